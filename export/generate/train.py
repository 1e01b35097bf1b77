"""Train T5 encoder-decoders from a config on a sequence-to-sequence task: seeded, resumable, cached.

No pretrained T5 weights are reachable here, so the Swift and Super of the seq2seq pair are
``T5ForConditionalGeneration`` models made from configs (``PRESETS``), with real Hugging Face
tokenizers built from the training data: one over characters for the input, one over
space-separated target tokens (phonemes) for the output, in one id space so T5's shared
embedding serves both. Both are saved with the checkpoint (``tokenizer.json`` and
``target_tokenizer/tokenizer.json``).

``train_seq2seq`` writes under ``cache_dir/train/<key>/`` as ``elang train`` does: ``state.pt``
after every epoch (an interrupted run resumes), ``best/`` (lowest validation WER) and
``metrics.json`` (once it exists, the run is done and a second call returns at once).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from elang.core.identity import folder_identity
from elang.data.seq2seq import G2P_TASK, Seq2SeqSet, Seq2SeqSplits, error_rates, stress_free_rates
from elang.export.state import restore_state, save_state

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2 (T5: pad is also the decoder start)
TARGET_TOKENIZER = "target_tokenizer"
SEQ2SEQ_FILE = "seq2seq.json"


@dataclass(frozen=True)
class Seq2SeqRecipe:
    """One T5 made from a config, and how to train it."""

    name: str
    d_model: int
    d_ff: int
    num_heads: int
    encoder_layers: int
    decoder_layers: int
    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 128
    warmup: float = 0.05
    dropout: float = 0.1
    label_smoothing: float = 0.1
    # T5 knows positions only through relative attention buckets. With T5's default 32 buckets only
    # offsets under 8 are exact, and a model trained from scratch on characters learns a bag of
    # phonemes in the wrong order (96% WER after 2 epochs here); exact buckets over a whole word
    # let it align (76% vs 98% WER after 1200 steps of the Swift, docs/SEQ2SEQ.md).
    relative_buckets: int = 128
    relative_max_distance: int = 128
    # "random": batches of random pairs; "length": of similar input lengths. The deeper Super stayed
    # on the bag-of-phonemes plateau with length batches (95.9% WER after 2 epochs) and left it with
    # random ones (62.7% after 1200 steps); the Swift learned with either (docs/SEQ2SEQ.md).
    batching: str = "random"
    schedule: str = "linear"  # learning rate after warm-up: "linear" decay to 0, or "constant"
    # T5 folds attention's 1/sqrt(d_kv) into the query weights' init, but Adam's steps ignore a
    # weight's scale: the queries then move sqrt(d_kv) times faster relative to their size than a
    # standard transformer's, and models wider than the Swift sat on the bag-of-phonemes plateau
    # (98% WER at 600 steps vs 65% with this; docs/BENCHMARKS.md 8.1). True: the query weights train at
    # lr / sqrt(d_kv) (a scaled-dot-product transformer's training) and the untied output head
    # starts at std d_model^-0.5 (HF draws it at std 1.0: logits of std ~14, a first loss of ~32).
    scaled_attention: bool = True
    max_source_tokens: int = 40
    max_target_tokens: int = 40
    lowercase: bool = True
    validation_words: int = 1000  # validation inputs decoded after every epoch (the best epoch is kept)
    seed: int = 0
    # bfloat16 autocast of the forward pass (AMX on this CPU): 1.7x a step of the Super's shape at
    # batch 128 (338 vs 581 ms, scripts/bf16-probe.py, docs/SEQ2SEQ.md); slower for the tiny Swift.
    bf16: bool = False
    # Sequence-level knowledge distillation (Kim & Rush 2016): train on this checkpoint's greedy
    # outputs for the training inputs instead of the references, so the student agrees with the
    # teacher (a Swift distilled from its Super: its energy then finds the words the Super fixes).
    distill_from: str | None = None
    # Warm start: the weights of this checkpoint (same shape, same tokenizers) instead of a fresh
    # init, trained on under this recipe's schedule (a restart of the learning rate: more epochs for
    # a model whose linear decay ended while its validation WER still fell).
    init_from: str | None = None
    # Checkpoint averaging: the weights at the ends of the last N epochs averaged (N >= 2); kept as
    # the checkpoint when their validation WER beats the best single epoch's.
    average_last: int = 0

    def __post_init__(self) -> None:
        if self.average_last < 0 or self.average_last == 1 or self.average_last > self.epochs:
            raise ValueError(f"average_last must be 0 (off) or 2..epochs ({self.epochs}), got {self.average_last}")
        if self.d_model % self.num_heads:
            # ONNX Runtime rejects the past key/value shapes otherwise (num_heads * d_kv must be d_model).
            raise ValueError(f"d_model {self.d_model} must be a multiple of num_heads {self.num_heads}")


# Sizes picked on this machine (docs/BENCHMARKS.md section 8): a Swift generation costs about a
# fifth of a Super's (0.19 vs 0.84 ms a word), the Super is the better model. Both train in about
# 48 minutes on 2 cores (Swift 11, Super 37): over the half hour asked for, because 3 epochs of
# the Super (22 min) left it 5.5 points better than a 4-epoch Swift and 2.6 points *worse* than
# the 12-epoch one; `--epochs 3` gives that shorter run.
PRESETS = {
    "swift": Seq2SeqRecipe(
        "g2p-swift",
        d_model=128,
        d_ff=256,
        num_heads=4,
        encoder_layers=2,
        decoder_layers=1,
        epochs=12,
        batching="length",
    ),
    "super": Seq2SeqRecipe(
        "g2p-super",
        d_model=256,
        d_ff=1024,
        num_heads=4,
        encoder_layers=3,
        decoder_layers=3,
        epochs=20,
        batching="length",
        bf16=True,
    ),
}


@dataclass
class Seq2SeqTrainResult:
    checkpoint: Path
    metrics: dict


def build_tokenizers(splits: Seq2SeqSplits, lowercase: bool = True):  # noqa: ANN201 - (source, target, vocab size)
    """A character tokenizer for inputs and a token tokenizer for targets, over one id space."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    texts = splits.train.inputs
    chars = sorted({ch for t in texts for ch in (t.lower() if lowercase else t)})
    targets = sorted({tok for refs in splits.train.references for r in refs for tok in r.split()})
    # One vocabulary for both (no holes in either's ids); a target token spelled like a character is one token.
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*SPECIALS, *chars, *targets]))}

    def make(pre) -> PreTrainedTokenizerFast:  # noqa: ANN001
        tok = Tokenizer(models.WordLevel(dict(vocab), unk_token="<unk>"))
        if lowercase and pre is None:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre or pre_tokenizers.Split(Regex("."), behavior="isolated")
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        tok.add_special_tokens(list(SPECIALS))
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
        )

    from tokenizers import pre_tokenizers as pt

    return make(None), make(pt.WhitespaceSplit()), len(vocab)


def _config(recipe: Seq2SeqRecipe, vocab_size: int):  # noqa: ANN202
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab_size,
        d_model=recipe.d_model,
        d_kv=recipe.d_model // recipe.num_heads,
        d_ff=recipe.d_ff,
        num_heads=recipe.num_heads,
        num_layers=recipe.encoder_layers,
        num_decoder_layers=recipe.decoder_layers,
        dropout_rate=recipe.dropout,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        relative_attention_num_buckets=recipe.relative_buckets,
        relative_attention_max_distance=recipe.relative_max_distance,
        tie_word_embeddings=False,
    )


def _key(recipe: Seq2SeqRecipe, splits: Seq2SeqSplits) -> str:
    d = asdict(recipe)
    if d["batching"] == "length":  # what every recipe did before the field existed: the same key
        del d["batching"]
    if d["schedule"] == "linear":
        del d["schedule"]
    if not d["scaled_attention"]:
        del d["scaled_attention"]
    if not d["bf16"]:
        del d["bf16"]
    for opt_field, off in (("distill_from", None), ("init_from", None), ("average_last", 0)):
        if d[opt_field] == off:  # recipes from before the field existed keep their keys
            del d[opt_field]
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
    h.update(splits.fingerprint.encode())
    for source in (recipe.distill_from, recipe.init_from):  # what the checkpoint holds, not just its path
        if source and Path(source).is_dir():
            h.update(folder_identity(Path(source)))
    return f"{recipe.name}-{h.hexdigest()[:12]}"


def new_model(recipe: Seq2SeqRecipe, vocab_size: int):  # noqa: ANN201 - T5ForConditionalGeneration
    """A T5 from ``recipe``'s config, seeded, with the output head's init fixed (``scaled_attention``)."""
    import torch
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(recipe.seed)
    model = T5ForConditionalGeneration(_config(recipe, vocab_size))
    if recipe.scaled_attention:
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, recipe.d_model**-0.5)
    return model


def new_optimizer(model, recipe: Seq2SeqRecipe, total_steps: int):  # noqa: ANN001, ANN201 - (AdamW, LambdaLR)
    """AdamW (queries at lr / sqrt(d_kv) under ``scaled_attention``) and the recipe's schedule."""
    import torch

    if recipe.schedule not in ("linear", "constant"):
        raise ValueError(f"schedule must be linear or constant, got {recipe.schedule!r}")
    groups: list[dict] = [
        {"params": []},
        {"params": [], "lr": recipe.lr * (recipe.d_model // recipe.num_heads) ** -0.5},
    ]
    for name, param in model.named_parameters():
        groups[int(recipe.scaled_attention and name.endswith(".q.weight"))]["params"].append(param)
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=0.01)
    warm = max(1, int(recipe.warmup * total_steps))
    decay = recipe.schedule == "linear"
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total_steps - s) / max(1, total_steps - warm)) if decay else 1.0)
    )
    return opt, sched


def train_step(model, opt, sched, loss_fn, items: list[tuple[list[int], list[int]]], bf16: bool = False) -> float:  # noqa: ANN001
    """One optimisation step on ``items`` (the forward under bfloat16 autocast with ``bf16``); returns the loss."""
    import torch

    model.train()
    ids, mask, labels = _batch(items)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    opt.zero_grad()
    return float(loss.item())


def epoch_batches(items: list[tuple[list[int], list[int]]], recipe: Seq2SeqRecipe, epoch: int) -> list[list[int]]:
    """The batches of ``epoch`` in training order (seeded by the recipe's seed and the epoch)."""
    rng = np.random.default_rng(recipe.seed + epoch)
    order = rng.permutation(len(items))
    if recipe.batching == "length":  # batches of similar lengths (less padding), in a random order
        order = sorted(order, key=lambda i: len(items[i][0]) // 3)
    elif recipe.batching != "random":
        raise ValueError(f"batching must be random or length, got {recipe.batching!r}")
    batches = [list(order[i : i + recipe.batch_size]) for i in range(0, len(order), recipe.batch_size)]
    return [batches[b] for b in rng.permutation(len(batches))]


def _pairs(ds: Seq2SeqSet, src, tgt, recipe: Seq2SeqRecipe) -> list[tuple[list[int], list[int]]]:  # noqa: ANN001
    """Every (input, reference) pair that fits the token limits, encoded."""
    inputs = [i for i, refs in zip(ds.inputs, ds.references) for _ in refs]
    refs = [r for rs in ds.references for r in rs]
    a = src(inputs, add_special_tokens=True)["input_ids"]
    b = tgt(refs, add_special_tokens=True)["input_ids"]
    return [(x, y) for x, y in zip(a, b) if len(x) <= recipe.max_source_tokens and len(y) <= recipe.max_target_tokens]


def _batch(items: list[tuple[list[int], list[int]]]):  # noqa: ANN202
    import torch

    ws, wt = max(len(x) for x, _ in items), max(len(y) for _, y in items)
    ids = torch.tensor([x + [0] * (ws - len(x)) for x, _ in items])
    labels = torch.tensor([y + [-100] * (wt - len(y)) for _, y in items])
    return ids, (ids != 0).long(), labels


def generate_texts(model, src, tgt, inputs: list[str], max_new_tokens: int, batch_size: int = 256) -> list[str]:  # noqa: ANN001
    """Greedy outputs of ``model`` for ``inputs`` (PyTorch; the reference the ONNX export is checked against)."""
    import torch

    model.eval()
    out: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch_size):
            enc = src(inputs[i : i + batch_size], padding=True, return_tensors="pt", return_token_type_ids=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            out += tgt.batch_decode(gen, skip_special_tokens=True)
    return out


def evaluate(model, src, tgt, ds: Seq2SeqSet, recipe: Seq2SeqRecipe, stress: bool = False) -> dict:  # noqa: ANN001
    """WER/PER of greedy outputs on ``ds``; ``stress``: also with stress digits ignored (G2P)."""
    preds = generate_texts(model, src, tgt, ds.inputs, recipe.max_target_tokens)
    rates = error_rates(preds, ds.references)
    out = {"wer": rates.wer, "per": rates.per, "n": rates.n}
    if stress:
        free = stress_free_rates(preds, ds.references)
        out.update(wer_no_stress=free.wer, per_no_stress=free.per)
    return out


def _stress_free_test(metrics: dict, best: Path, splits: Seq2SeqSplits, recipe: Seq2SeqRecipe) -> dict:
    """G2P: the test WER/PER with stress ignored (the published form), added to metrics written
    before they carried it."""
    if splits.task != G2P_TASK or "test_wer_no_stress" in metrics:
        return metrics
    model, src, tgt = load_seq2seq(best)
    ev = evaluate(model, src, tgt, splits.test, recipe, stress=True)
    return {**metrics, "test_wer_no_stress": ev["wer_no_stress"], "test_per_no_stress": ev["per_no_stress"]}


def teacher_targets(
    teacher: Path, train: Seq2SeqSet, run: Path, recipe: Seq2SeqRecipe, progress: bool = True
) -> tuple[Seq2SeqSet, dict]:
    """The training inputs with the teacher's greedy output as their one target (cached in ``run``),
    and what to record about it: the teacher, its word error rate on the training words."""
    cache = run / "teacher_outputs.json"
    if cache.is_file():
        outputs = json.loads(cache.read_text())
    else:
        if not (Path(teacher) / "config.json").is_file():
            raise FileNotFoundError(f"--distill-from {teacher}: not a checkpoint folder (no config.json)")
        model, t_src, t_tgt = load_seq2seq(Path(teacher))
        outputs = []
        step = 2048
        from tqdm import tqdm

        for i in tqdm(range(0, len(train), step), desc="teacher outputs", unit="chunk", disable=not progress):
            outputs += generate_texts(model, t_src, t_tgt, train.inputs[i : i + step], recipe.max_target_tokens)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(outputs))
        tmp.replace(cache)
    if len(outputs) != len(train):
        raise ValueError(f"{cache}: {len(outputs)} teacher outputs for {len(train)} training inputs; delete it")
    keep = [i for i, o in enumerate(outputs) if o.strip()]  # an empty output teaches nothing
    distilled = Seq2SeqSet([train.inputs[i] for i in keep], [[outputs[i]] for i in keep])
    rates = error_rates(outputs, train.references)
    return distilled, {
        "distilled_from": str(teacher),
        "teacher_train_wer": rates.wer,
        "teacher_empty": len(train) - len(keep),
    }


def load_seq2seq(folder: Path):  # noqa: ANN201 - (model, source tokenizer, target tokenizer)
    """A trained (or user's) seq2seq checkpoint with its tokenizers; the target's defaults to the source's."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = Path(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    src = AutoTokenizer.from_pretrained(folder)
    tdir = folder / TARGET_TOKENIZER
    tgt = AutoTokenizer.from_pretrained(tdir) if tdir.is_dir() else src
    return model, src, tgt


def train_seq2seq(
    recipe: Seq2SeqRecipe,
    splits: Seq2SeqSplits,
    cache_dir: Path,
    progress: bool = True,
    save_every_s: float = 300.0,
) -> Seq2SeqTrainResult:
    """Train (or return the cached result of) ``recipe`` on ``splits``.

    The state is saved after every epoch and, inside one, every ``save_every_s`` seconds (0: only
    at epochs' ends), so a killed run resumes at the step it had reached, with the same data order.
    """
    import torch
    from tqdm import tqdm

    run = Path(cache_dir) / "train" / _key(recipe, splits)
    metrics_path, best, state_path = run / "metrics.json", run / "best", run / "state.pt"
    if metrics_path.is_file() and (best / "config.json").is_file():
        log.info("cached: %s", run)
        metrics = json.loads(metrics_path.read_text())
        full = _stress_free_test(metrics, best, splits, recipe)
        if full is not metrics:
            metrics_path.write_text(json.dumps(full, indent=2))
        return Seq2SeqTrainResult(best, full)
    run.mkdir(parents=True, exist_ok=True)
    (run / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2))
    src, tgt, vocab_size = build_tokenizers(splits, recipe.lowercase)  # the references' vocabulary, in full
    model = new_model(recipe, vocab_size)
    if recipe.init_from:
        warm_start(model, src, tgt, Path(recipe.init_from))
    train_set = splits.train
    teacher_note: dict = {}
    if recipe.distill_from:
        train_set, teacher_note = teacher_targets(Path(recipe.distill_from), splits.train, run, recipe, progress)
    items = _pairs(train_set, src, tgt, recipe)
    if not items:
        raise ValueError(f"no training pair fits {recipe.max_source_tokens}/{recipe.max_target_tokens} tokens")
    dropped = sum(len(r) for r in splits.train.references) - len(items)
    steps_per_epoch = math.ceil(len(items) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    opt, sched = new_optimizer(model, recipe, total)
    pos = {"epoch": 0, "step": 0, "best_wer": 2.0, "history": [], "seconds": 0.0}
    saved = restore_state(state_path, model, opt, sched)
    if saved is not None:
        pos = saved
        log.info("resuming %s at epoch %d of %d, step %d", run, pos["epoch"], recipe.epochs, pos.get("step", 0))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=recipe.label_smoothing)
    val = splits.validation.head(recipe.validation_words)
    t0 = time.monotonic() - pos["seconds"]
    bar = tqdm(
        total=total,
        initial=pos["epoch"] * steps_per_epoch + pos.get("step", 0),
        desc=f"train {recipe.name}",
        unit="step",
        disable=not progress,
    )

    def save() -> None:
        pos["seconds"] = time.monotonic() - t0
        save_state(state_path, model, opt, sched, pos)

    last_save = time.monotonic()
    while pos["epoch"] < recipe.epochs:
        # The epoch's batches are a function of (seed, epoch): a resumed run skips the ones done.
        batches = epoch_batches(items, recipe, pos["epoch"])
        for k in range(pos.get("step", 0), len(batches)):
            loss = train_step(model, opt, sched, loss_fn, [items[i] for i in batches[k]], recipe.bf16)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if save_every_s and time.monotonic() - last_save >= save_every_s and k + 1 < len(batches):
                pos["step"] = k + 1
                save()
                last_save = time.monotonic()
        pos["epoch"] += 1
        pos["step"] = 0
        ev = evaluate(model, src, tgt, val, recipe)
        pos["history"].append({"epoch": pos["epoch"], "validation_wer": ev["wer"], "validation_per": ev["per"]})
        log.info("epoch %d: validation WER %.2f%% PER %.2f%%", pos["epoch"], 100 * ev["wer"], 100 * ev["per"])
        if ev["wer"] < pos["best_wer"]:
            pos["best_wer"] = ev["wer"]
            _save(model, src, tgt, best, recipe, splits)
        if recipe.average_last and pos["epoch"] > recipe.epochs - recipe.average_last:
            torch.save(model.state_dict(), run / f"epoch-{pos['epoch']}.pt")
        save()
        last_save = time.monotonic()
    bar.close()
    if recipe.average_last and "averaged" not in pos:
        pos["averaged"] = average_checkpoints(model, src, tgt, run, best, val, recipe, splits, pos)
        save()
    model, src, tgt = load_seq2seq(best)
    val_full = evaluate(model, src, tgt, splits.validation, recipe)
    test = evaluate(model, src, tgt, splits.test, recipe, stress=splits.task == G2P_TASK)
    metrics = {
        "recipe": asdict(recipe),
        "validation_wer": val_full["wer"],
        "validation_per": val_full["per"],
        "test_wer": test["wer"],
        "test_per": test["per"],
        **(
            {"test_wer_no_stress": test["wer_no_stress"], "test_per_no_stress": test["per_no_stress"]}
            if "wer_no_stress" in test
            else {}
        ),
        "train_seconds": time.monotonic() - t0,
        "epochs": pos["epoch"],
        "history": pos["history"],
        **({"averaged": pos["averaged"]} if "averaged" in pos else {}),
        **({"init_from": recipe.init_from} if recipe.init_from else {}),
        "training_pairs": len(items),
        "pairs_over_length": dropped,
        "splits": {k: len(getattr(splits, k)) for k in ("train", "validation", "test", "calibration")},
        "data_fingerprint": splits.fingerprint,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        **teacher_note,
    }
    metrics_path.write_text(json.dumps(metrics, indent=2))
    state_path.unlink(missing_ok=True)
    for snap in run.glob("epoch-*.pt"):
        snap.unlink()
    return Seq2SeqTrainResult(best, metrics)


def warm_start(model, src, tgt, folder: Path) -> None:  # noqa: ANN001
    """Load ``folder``'s weights into ``model``; refused unless its shape and tokenizers are the run's."""
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--init-from {folder}: not a checkpoint folder (no config.json)")
    init, i_src, i_tgt = load_seq2seq(folder)
    if i_src.get_vocab() != src.get_vocab() or i_tgt.get_vocab() != tgt.get_vocab():
        raise ValueError(f"--init-from {folder}: its tokenizers differ from the ones built from this data")
    mine, theirs = model.state_dict(), init.state_dict()
    bad = sorted(k for k in mine.keys() | theirs.keys() if k not in mine or k not in theirs or mine[k].shape != theirs[k].shape)
    if bad:
        raise ValueError(f"--init-from {folder}: its shape is not this recipe's (first mismatch: {bad[0]})")
    model.load_state_dict(theirs)
    log.info("warm start from %s", folder)


def average_checkpoints(model, src, tgt, run: Path, best: Path, val: Seq2SeqSet, recipe, splits, pos: dict) -> dict:  # noqa: ANN001
    """Average the saved ends of the last epochs; keep the mean as ``best`` when its validation WER
    is lower than the best epoch's. Returns what to record."""
    import torch

    snaps = sorted(run.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    epochs = [int(p.stem.split("-")[1]) for p in snaps]
    if len(snaps) < 2:
        return {"epochs": epochs, "kept": False, "reason": "fewer than 2 snapshots"}
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in snaps]
    mean = {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    model.load_state_dict(mean)
    ev = evaluate(model, src, tgt, val, recipe)
    kept = ev["wer"] < pos["best_wer"]
    log.info(
        "average of epochs %s: validation WER %.2f%% (best epoch %.2f%%)%s",
        epochs, 100 * ev["wer"], 100 * pos["best_wer"], ", kept" if kept else "",
    )
    if kept:
        pos["best_wer"] = ev["wer"]
        _save(model, src, tgt, best, recipe, splits)
    return {"epochs": epochs, "validation_wer": ev["wer"], "kept": kept}


def _save(model, src, tgt, folder: Path, recipe: Seq2SeqRecipe, splits: Seq2SeqSplits) -> None:  # noqa: ANN001
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    src.save_pretrained(tmp)
    tgt.save_pretrained(tmp / TARGET_TOKENIZER)
    (tmp / SEQ2SEQ_FILE).write_text(
        json.dumps(
            {
                "task": splits.task,
                "max_source_tokens": recipe.max_source_tokens,
                "max_new_tokens": recipe.max_target_tokens,
                "data_fingerprint": splits.fingerprint,
            },
            indent=2,
        )
    )
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)


def quick(recipe: Seq2SeqRecipe) -> Seq2SeqRecipe:
    """A first look: one epoch of a small model (the split sizes are the caller's)."""
    return replace(recipe, epochs=1, validation_words=200)
