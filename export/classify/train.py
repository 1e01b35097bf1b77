"""Fine-tune a Hugging Face encoder as a sequence classifier: seeded, resumable, cached.

``train_classifier`` writes everything under ``cache_dir/train/<key>/``, where the key
hashes the base model, the recipe and the data splits:

* ``state.pt``: model, optimizer, scheduler and position after every evaluation, so an
  interrupted run restarts where it stopped;
* ``best/``: the best checkpoint on validation accuracy (HF folder + tokenizer + labels.json);
* ``metrics.json``: validation and test accuracy of ``best/``; once it exists the run is
  done and a second call returns at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from elang.calibration.classify import TEMPERATURE_BOUNDS, split_for_fitting
from elang.calibration.thresholds import fit_temperature
from elang.core.identity import folder_identity
from elang.core.texts import truncation_summary
from elang.data.datasets import LABELS_FILE, Dataset, Splits, save_label_map
from elang.export.classify.pretrained import resolve
from elang.export.state import restore_state, save_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """How to fine-tune one model."""

    base: str  # a named pretrained model (minilm-l6, mpnet-base) or a checkpoint folder
    layers: int | None = None  # keep only the first N encoder layers
    freeze_layers: int = 0  # freeze the embeddings and the first N encoder layers
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int | None = None  # None: from the data (see auto_max_length)
    weight_decay: float = 0.01
    warmup: float = 0.06
    patience: int = 1  # evaluations without improvement before stopping
    evals_per_epoch: int = 1
    seed: int = 0
    min_steps: int = 200  # no early stop before this many steps (small data: a few evaluations prove nothing)
    class_weights: bool = False  # weight the loss by inverse label frequency (imbalanced labels)
    distill_from: str | None = None  # a teacher checkpoint: learn its soft labels too, on unlabelled texts as well
    distill_unlabelled: int | None = None  # unlabelled texts to use (default: all the splits leave unused)
    distill_alpha: float = 0.5  # weight of the true-label loss on labelled texts; the rest is the teacher's
    distill_temperature: float = 2.0
    exits: tuple[int, ...] | None = None  # multi-exit: a classifier after each of these layers (1-based)
    exit_distill: float = 0.5  # multi-exit: weight of distilling the top exit into the lower ones
    exit_head_lr: float | None = None  # multi-exit: learning rate of the exit heads (None: 5e-4, or lr if higher)
    exit_weighting: str | None = None  # multi-exit: "equal" (Right Tool, None) or "depth" (PABEE) loss weights


# Fields added after models were cached: at their defaults they stay out of the cache key, so a
# recipe that does not use them keeps the key (and the trained model) it always had.
_LATER_FIELDS = (
    "min_steps",
    "class_weights",
    "distill_from",
    "distill_unlabelled",
    "distill_alpha",
    "distill_temperature",
    "exits",
    "exit_distill",
    "exit_head_lr",
    "exit_weighting",
)
EXIT_HEAD_LR = 5e-4
EXIT_WEIGHTINGS = ("equal", "depth")
MAX_LENGTH_CAP = 256


def auto_max_length(tokenizer, texts: list[str], pairs: list[str] | None = None) -> tuple[int, float]:  # noqa: ANN001
    """(max length, 95th percentile of token lengths): the percentile rounded up to 32, within 32..256."""
    sample = texts[:5000]
    enc = tokenizer(sample, pairs[:5000] if pairs else None, truncation=False)["input_ids"]
    p95 = float(np.percentile([len(x) for x in enc], 95))
    return int(min(MAX_LENGTH_CAP, max(32, math.ceil(p95 / 32) * 32))), p95


# The default pair, chosen by `elang pairs` (docs/BENCHMARKS.md section 1): MiniLM-L6 at all six
# layers needs a sixth of the Super share that its 3-layer cut needs at "0.5 pt below Super".
PRESETS = {
    "swift": Recipe(base="minilm-l6", layers=6, epochs=4, lr=8e-5),
    "super": Recipe(base="mpnet-base", freeze_layers=6, epochs=2, lr=4e-5),
}


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict


def _key(recipe: Recipe, base_dir: Path, splits: Splits, unlabelled: list[str]) -> str:
    defaults = {f.name: f.default for f in fields(Recipe)}
    d = {k: v for k, v in asdict(recipe).items() if k not in _LATER_FIELDS or v != defaults[k]}
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
    if recipe.distill_from:  # what the teacher holds, not just its path: a Super retrained in place is new
        h.update(folder_identity(Path(recipe.distill_from)))
        h.update(hashlib.sha256("\n".join(unlabelled).encode()).digest())
    h.update(folder_identity(base_dir, (".safetensors", ".bin")))
    h.update(splits.fingerprint.encode())
    name = Path(recipe.base).name if "/" in recipe.base else recipe.base
    return f"{name}-{h.hexdigest()[:12]}"


def _encode(tokenizer, ds: Dataset, max_length: int) -> list[dict]:  # noqa: ANN001
    enc = tokenizer(ds.texts, ds.pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(ds))]


def _collate(tokenizer, items: list[dict]):  # noqa: ANN001, ANN202
    """Right-pad encoded items into tensors (what ``tokenizer.pad`` does, without its fast-tokenizer warning)."""
    import torch

    width = max(len(it["input_ids"]) for it in items)
    fill = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
    return {k: torch.tensor([list(it[k]) + [fill[k]] * (width - len(it[k])) for it in items]) for k in items[0]}


def _pcts(values: list[float]) -> str:
    return " ".join(f"{v:.2%}" for v in values)


def exit_logits(model, batch: dict) -> list:  # noqa: ANN001
    """Logits of every exit of ``model`` on ``batch``: one for a plain classifier, one per exit otherwise."""
    out = model(**batch)
    return out if isinstance(out, list) else [out.logits]


def evaluate(model, tokenizer, ds: Dataset, max_length: int, batch_size: int = 64, desc: str = "eval") -> dict:  # noqa: ANN001
    """Accuracy and logits of ``model`` on ``ds`` (length-sorted batches, so little padding).

    ``logits`` are the top exit's; ``exit_logits`` [texts, exits, labels] and ``exit_accuracy``
    hold every exit's (one exit for a plain classifier).
    """
    import torch
    from tqdm import tqdm

    items = _encode(tokenizer, ds, max_length)
    order = np.argsort([len(x["input_ids"]) for x in items])
    exits = len(getattr(model, "layers", ())) or 1
    logits = np.zeros((len(ds), exits, len(ds.label_names)), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            idx = order[start : start + batch_size]
            batch = _collate(tokenizer, [items[i] for i in idx])
            logits[idx] = torch.stack(exit_logits(model, batch), dim=1).float().numpy()
    acc = [float(np.mean(logits[:, e].argmax(1) == ds.labels)) for e in range(exits)]
    return {"accuracy": acc[-1], "logits": logits[:, -1], "exit_logits": logits, "exit_accuracy": acc}


def extended_epochs(recipe: Recipe, steps_per_epoch: int) -> int:
    """The epochs a run trains: the recipe's, extended so that it makes at least ``min_steps``
    optimisation steps (on a small file the presets' epochs are a few dozen steps, too few to
    leave the majority class)."""
    return max(recipe.epochs, math.ceil(recipe.min_steps / max(1, steps_per_epoch)))


def skew_note(labels: np.ndarray, label_names: list[str], class_weights: bool, share: float = 0.6) -> str | None:
    """A hint to weight the loss when one class holds ``share`` or more of the training labels."""
    counts = np.bincount(np.asarray(labels), minlength=len(label_names))
    if class_weights or counts.sum() == 0 or counts.max() / counts.sum() < share:
        return None
    major = int(counts.argmax())
    return (
        f"{label_names[major]!r} is {counts[major] / counts.sum():.1%} of the training labels: "
        "--class-weights weights the loss by inverse label frequency"
    )


def collapse_warning(
    logits: np.ndarray, labels: np.ndarray, label_names: list[str], split: str = "validation"
) -> str | None:
    """A loud warning when a model learnt nothing beyond the label frequencies of ``split``, else None.

    Fires when the model predicts a single class for every text of the split, or when its accuracy
    on ``labels`` is no better than always answering that split's most frequent label (a collapse
    seen on a small, imbalanced user corpus: every preset reached exactly the majority share).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return None
    pred = np.asarray(logits).argmax(1)
    counts = np.bincount(labels, minlength=len(label_names))
    major = int(counts.argmax())
    share = counts[major] / labels.size
    acc = float(np.mean(pred == labels))
    hint = "; try more epochs, --patience 3 --evals-per-epoch 4, another --lr, or check that the labels are right"
    used = np.unique(pred)
    if used.size == 1:
        return f"on {split}, the model predicts a single class ({label_names[int(used[0])]!r}) for every text{hint}"
    if acc <= share + 0.005:
        return (
            f"on {split}, the model ({acc:.2%}) does no better than always answering its majority class "
            f"{label_names[major]!r} ({share:.2%}){hint}"
        )
    return None


def trained_max_length(checkpoint: Path) -> int | None:
    """The max length an `elang train` checkpoint was trained with (its run's metrics.json), if known."""
    metrics = Path(checkpoint).parent / "metrics.json"
    try:
        return int(json.loads(metrics.read_text())["recipe"]["max_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_teacher(teacher: Path, label_names: list[str]) -> None:

    if not (teacher / "config.json").is_file():
        raise FileNotFoundError(f"--distill-from {teacher}: not a Hugging Face checkpoint folder (no config.json)")
    labels = teacher / LABELS_FILE
    if labels.is_file():
        have = [n for _, n in sorted(json.loads(labels.read_text()).items(), key=lambda kv: int(kv[0]))]
        if have != label_names:
            raise ValueError(f"--distill-from {teacher} predicts labels {have}, the data has {label_names}")


def _teacher_logits(teacher: Path, train: Dataset, extra: Dataset, max_length: int, run: Path) -> np.ndarray:
    """The teacher's logits on the training texts then the unlabelled ones (cached in the run folder):
    [texts, exits, labels] (one exit for a plain classifier)."""
    from transformers import AutoTokenizer

    path = run / "teacher_logits.npy"
    if path.is_file():
        cached = np.load(path)
        return cached[:, None] if cached.ndim == 2 else cached  # cached before teachers had exits
    log.info("teacher %s on %d training and %d unlabelled texts", teacher, len(train), len(extra))
    model = load_trained(teacher)
    tok = AutoTokenizer.from_pretrained(teacher)
    parts = [evaluate(model, tok, ds, max_length, desc="teacher")["exit_logits"] for ds in (train, extra) if len(ds)]
    logits = np.concatenate(parts)
    np.save(path, logits)
    return logits


def _loss(logits, labels, weight, teacher, recipe: Recipe):  # noqa: ANN001, ANN202
    """Cross-entropy on the labelled rows; with a teacher, mixed with the distillation loss on every row."""
    import torch.nn.functional as F  # noqa: N812

    known = labels >= 0
    ce = logits.new_zeros(())
    if known.any():
        ce = F.cross_entropy(logits[known], labels[known], weight=weight)
    if teacher is None:
        return ce
    t = recipe.distill_temperature
    kd = F.kl_div(F.log_softmax(logits / t, -1), F.softmax(teacher / t, -1), reduction="batchmean") * t * t
    return recipe.distill_alpha * ce + (1 - recipe.distill_alpha) * kd


def _exits_loss(outs: list, labels, weight, teacher, recipe: Recipe, layers: tuple[int, ...] | None):  # noqa: ANN001, ANN202
    """One exit: :func:`_loss`. Several: their mean (Right Tool) or their sum weighted by depth (PABEE), the lower exits also
    distilled from the top one by ``exit_distill``; a teacher of shape [rows, exits, labels] teaches
    each exit its own logits (COST-EFF)."""
    import torch.nn.functional as F  # noqa: N812

    if len(outs) == 1:
        return _loss(outs[0], labels, weight, teacher, recipe)
    weights = [1.0] * len(layers) if recipe.exit_weighting != "depth" else [float(x) for x in layers]
    total, norm = outs[0].new_zeros(()), float(sum(weights))
    t = recipe.distill_temperature
    top = outs[-1].detach()
    for i, (logits, w) in enumerate(zip(outs, weights, strict=True)):
        own = None if teacher is None else (teacher[:, i] if teacher.dim() == 3 else teacher)
        part = _loss(logits, labels, weight, own, recipe)
        if i < len(outs) - 1 and recipe.exit_distill > 0:
            kd = F.kl_div(F.log_softmax(logits / t, -1), F.softmax(top / t, -1), reduction="batchmean") * t * t
            part = (1 - recipe.exit_distill) * part + recipe.exit_distill * kd
        total = total + (w / norm) * part
    return total


def _new_model(recipe: Recipe, base_dir: Path, names: list[str]):  # noqa: ANN202
    from transformers import AutoModelForSequenceClassification

    if recipe.exits:
        from elang.export.exits.model import MultiExitModel

        return MultiExitModel.from_base(base_dir, tuple(recipe.exits), len(names), recipe.layers)
    kwargs = {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }
    if recipe.layers:
        kwargs["num_hidden_layers"] = recipe.layers
    return AutoModelForSequenceClassification.from_pretrained(base_dir, **kwargs)


def load_trained(folder: Path):  # noqa: ANN201
    """A checkpoint written by training: a multi-exit model or a plain classifier."""
    from elang.export.exits.model import MultiExitModel, is_multi_exit

    if is_multi_exit(folder):
        return MultiExitModel.load(folder)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def _save_best(model, tokenizer, folder: Path, names: list[str]) -> None:  # noqa: ANN001
    if hasattr(model, "heads"):
        model.save(folder)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_label_map(folder, names)


def fit_exit_temperatures(model, tokenizer, calibration: Dataset | None, max_length: int, limit: int = 2000) -> list:  # noqa: ANN001
    """Per-exit temperatures (Right Tool) fitted on the part of the calibration split that `elang calibrate`
    fits on too (at most ``limit`` texts); 1.0 each without a calibration split."""

    if calibration is None or len(calibration) < 3:
        return [1.0] * len(model.layers)
    fit_idx, _ = split_for_fitting(len(calibration))
    ds = calibration.subset(fit_idx[:limit])
    ev = evaluate(model, tokenizer, ds, max_length, desc="temperatures")
    lo, hi = TEMPERATURE_BOUNDS
    fitted = [fit_temperature(ev["exit_logits"][:, e], ds.labels, lo, hi) for e in range(len(model.layers))]
    return [float(min(hi, max(lo, t))) for t in fitted]  # the search may step a hair past its bounds


def train_classifier(
    recipe: Recipe, splits: Splits, cache_dir: Path, progress: bool = True, save_every_s: float = 300.0
) -> TrainResult:
    """Fine-tune (or return the cached result of) ``recipe`` on ``splits``.

    The state is saved at every evaluation and, between them, every ``save_every_s`` seconds
    (0: at evaluations only), so a stopped run resumes at the step it reached and loses minutes."""
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    base_dir = resolve(recipe.base, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    notes: dict[str, str] = {}
    if recipe.max_length is None:
        ml, p95 = auto_max_length(tokenizer, splits.train.texts, splits.train.pairs)
        recipe = replace(recipe, max_length=ml)
        notes["max_length"] = (
            f"{ml} tokens (95th percentile of the training texts: {p95:.0f}; rounded up to 32, at most {MAX_LENGTH_CAP})"
        )
        log.info("max length %s", notes["max_length"])
    if recipe.exits:  # resolved here, so the cache key names them (a multi-exit run always sets them)
        recipe = replace(
            recipe,
            exit_head_lr=recipe.exit_head_lr or max(EXIT_HEAD_LR, recipe.lr),
            exit_weighting=recipe.exit_weighting or "equal",
        )
        if recipe.exit_weighting not in EXIT_WEIGHTINGS:
            raise ValueError(f"exit weighting must be one of {EXIT_WEIGHTINGS}, got {recipe.exit_weighting!r}")
    unlabelled: list[str] = []
    if recipe.distill_from:
        _check_teacher(Path(recipe.distill_from), list(splits.label_names))
        unlabelled = list(splits.unused[: recipe.distill_unlabelled])
        if splits.train.pairs is not None:
            unlabelled = []  # unused rows of a pair task lack their second text
    # Small data: more epochs, so the run makes at least min_steps steps (part of the cache key then).
    per_epoch = math.ceil((len(splits.train) + len(unlabelled)) / recipe.batch_size)
    epochs = extended_epochs(recipe, per_epoch)
    if epochs > recipe.epochs:
        notes["epochs"] = (
            f"{epochs} instead of {recipe.epochs}: {len(splits.train) + len(unlabelled)} training texts make "
            f"{per_epoch} steps an epoch, and a run trains at least {recipe.min_steps} steps (--min-steps)"
        )
        log.info("epochs: %s", notes["epochs"])
        recipe = replace(recipe, epochs=epochs)
    run = Path(cache_dir) / "train" / _key(recipe, base_dir, splits, unlabelled)
    metrics_path, best, state_path = run / "metrics.json", run / "best", run / "state.pt"
    if metrics_path.is_file() and (best / "config.json").is_file():
        log.info("cached: %s", run)
        return TrainResult(best, json.loads(metrics_path.read_text()))
    run.mkdir(parents=True, exist_ok=True)
    (run / "recipe.json").write_text(json.dumps({**asdict(recipe), "base_dir": str(base_dir)}, indent=2))
    log.info("training %s in %s", recipe.base, run)

    torch.manual_seed(recipe.seed)
    names = list(splits.label_names)
    model = _new_model(recipe, base_dir, names)
    multi = hasattr(model, "heads")
    if recipe.freeze_layers:
        base = model.encoder if multi else model.base_model
        for p in base.embeddings.parameters():
            p.requires_grad = False
        for layer in base.encoder.layer[: recipe.freeze_layers]:
            for p in layer.parameters():
                p.requires_grad = False

    sample = splits.train.texts[:5000]
    pairs = splits.train.pairs[:5000] if splits.train.pairs else None
    raw_lengths = [len(x) for x in tokenizer(sample, pairs, truncation=False)["input_ids"]]
    notes["truncation"] = "training: " + truncation_summary(raw_lengths, recipe.max_length)
    log.info("%s", notes["truncation"])
    train_items = _encode(tokenizer, splits.train, recipe.max_length)
    labels = torch.tensor(splits.train.labels)
    teacher = None
    if recipe.distill_from:
        extra = Dataset(unlabelled, None, np.zeros(len(unlabelled), dtype=np.int64), list(names))
        t_logits = _teacher_logits(Path(recipe.distill_from), splits.train, extra, recipe.max_length, run)
        exits = len(recipe.exits or ())
        if t_logits.shape[1] != exits:  # a teacher with other exits teaches every exit its top answer
            t_logits = t_logits[:, -1]
        teacher = torch.tensor(t_logits)
        train_items += _encode(tokenizer, extra, recipe.max_length) if len(extra) else []
        labels = torch.cat([labels, torch.full((len(unlabelled),), -1)])  # -1: no true label
    weight = None
    if recipe.class_weights:
        counts = np.bincount(splits.train.labels, minlength=len(names)).astype(np.float64)
        weight = torch.tensor(len(splits.train) / (len(names) * np.maximum(counts, 1)), dtype=torch.float32)
    steps_per_epoch = math.ceil(len(train_items) / recipe.batch_size)
    skew = skew_note(splits.train.labels, names, recipe.class_weights)
    if skew:
        notes["class_weights"] = skew
    total = steps_per_epoch * recipe.epochs
    eval_every = max(1, steps_per_epoch // recipe.evals_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict] = [{"params": params}]
    if multi:  # new exit heads learn at their own (higher) rate; the encoder at recipe.lr
        head_ids = {id(p) for p in model.heads.parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in head_ids]},
            {"params": [p for p in params if id(p) in head_ids], "lr": recipe.exit_head_lr},
        ]
    opt = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(recipe.warmup * total), total)
    pos = {"step": 0, "best_acc": -1.0, "bad_evals": 0, "history": [], "seconds": 0.0}
    saved = restore_state(state_path, model, opt, sched)
    if saved is not None:
        pos = saved
        log.info("resuming %s at step %d of %d", run, pos["step"], total)

    bar = tqdm(total=total, initial=pos["step"], desc=f"train {recipe.base}", unit="step", disable=not progress)
    t0 = time.monotonic() - pos["seconds"]
    stop = False

    def save() -> None:
        pos["seconds"] = time.monotonic() - t0
        save_state(state_path, model, opt, sched, pos)

    last_save = time.monotonic()
    while pos["step"] < total and not stop:
        epoch, offset = divmod(pos["step"], steps_per_epoch)
        order = np.random.default_rng(recipe.seed + epoch).permutation(len(train_items))
        for b in range(offset, steps_per_epoch):
            idx = order[b * recipe.batch_size : (b + 1) * recipe.batch_size]
            model.train()
            batch = _collate(tokenizer, [train_items[i] for i in idx])
            outs = exit_logits(model, batch)
            t_idx = None if teacher is None else teacher[idx]
            loss = _exits_loss(outs, labels[idx], weight, t_idx, recipe, getattr(model, "layers", None))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            pos["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if pos["step"] % eval_every == 0 or pos["step"] == total:
                ev = evaluate(model, tokenizer, splits.validation, recipe.max_length, desc="validation")
                # A multi-exit model is kept for the mean accuracy of its exits.
                acc = float(np.mean(ev["exit_accuracy"]))
                pos["history"].append({"step": pos["step"], "validation_accuracy": acc})
                if multi:
                    pos["history"][-1]["exit_accuracy"] = ev["exit_accuracy"]
                    log.info("step %d: validation accuracy per exit %s", pos["step"], _pcts(ev["exit_accuracy"]))
                else:
                    log.info("step %d: validation accuracy %.4f", pos["step"], acc)
                if acc > pos["best_acc"]:
                    pos["best_acc"], pos["bad_evals"] = acc, 0
                    _save_best(model, tokenizer, best, names)
                else:
                    pos["bad_evals"] += 1
                    stop = pos["bad_evals"] > recipe.patience and pos["step"] >= recipe.min_steps
                save()
                last_save = time.monotonic()
                if stop:
                    log.info("early stop at step %d", pos["step"])
                    break
            elif save_every_s and time.monotonic() - last_save >= save_every_s:
                save()
                last_save = time.monotonic()
    bar.close()
    best_model = load_trained(best)
    extra: dict = {}
    if multi:
        best_model.temperatures = fit_exit_temperatures(best_model, tokenizer, splits.calibration, recipe.max_length)
        best_model.save(best)
        extra["exit_temperatures"] = best_model.temperatures
    val = evaluate(best_model, tokenizer, splits.validation, recipe.max_length, desc="validation")
    test = evaluate(best_model, tokenizer, splits.test, recipe.max_length, desc="test")
    metrics = {
        "base": recipe.base,
        "recipe": asdict(recipe),
        "validation_accuracy": val["accuracy"],
        "test_accuracy": test["accuracy"],
        "train_seconds": time.monotonic() - t0,
        "steps": pos["step"],
        "history": pos["history"],
        "splits": {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test)},
        "data_fingerprint": splits.fingerprint,
        "parameters": int(sum(p.numel() for p in best_model.parameters())),
        "warning": "; ".join(
            w
            for w in (
                collapse_warning(val["logits"], splits.validation.labels, list(splits.label_names), "validation"),
                collapse_warning(test["logits"], splits.test.labels, list(splits.label_names), "test"),
            )
            if w
        )
        or None,
        "notes": notes,
        "distilled_from": recipe.distill_from,
        "unlabelled_texts": len(unlabelled),
        **extra,
    }
    if multi:
        from elang.export.exits.model import exit_flops

        metrics["exit_layers"] = list(best_model.layers)
        metrics["exit_validation_accuracy"] = val["exit_accuracy"]
        metrics["exit_test_accuracy"] = test["exit_accuracy"]
        mean_len = float(np.mean([len(x["input_ids"]) for x in _encode(tokenizer, splits.test, recipe.max_length)]))
        metrics["exit_gflops"] = [f / 1e9 for f in exit_flops(best_model.encoder.config, best_model.layers, mean_len)]
    metrics_path.write_text(json.dumps(metrics, indent=2))
    state_path.unlink(missing_ok=True)  # the best checkpoint and metrics are what remains
    return TrainResult(best, metrics)
