"""COST-EFF-style slenderization of a multi-exit encoder (Shen et al. 2022).

``slenderize`` keeps the depth and every exit of a trained multi-exit checkpoint and narrows
each layer:

1. **Importance.** First-order (Taylor) importance of every attention head and FFN neuron on
   training texts: ``|sum(w * dL/dw)|`` over the weights that belong to it (the head's rows of
   the query, key and value projections and its columns of the output projection; the
   neuron's row of the FFN input and column of the FFN output), summed over batches. ``L`` is
   the depth-weighted sum of the exits' losses, the loss the model was trained with.
2. **Pruning.** Per layer, the most important ``width`` share of heads (at least one) and
   ``ffn_width`` share of FFN neurons are kept (the same count in every layer, so the
   checkpoint stays an ordinary Hugging Face folder: ``config.pruned_heads`` and
   ``config.intermediate_size``).
3. **Retraining.** All exits are retrained jointly, each distilled from the unpruned model's
   matching exit (``elang train`` with ``--distill-from`` the unpruned checkpoint), cached and
   resumable like any training run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang.data.datasets import Splits, save_label_map
from elang.export.classify.train import Recipe, TrainResult, _collate, _encode, train_classifier
from elang.export.exits.model import MultiExitError, MultiExitModel, exit_flops, is_multi_exit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlenderPlan:
    width: float = 0.5  # share of attention heads kept per layer
    ffn_width: float | None = None  # share of FFN neurons kept per layer (default: width)
    importance_texts: int = 1024
    epochs: int = 2
    lr: float = 5e-5
    batch_size: int = 32
    unlabelled: int = 0  # texts no split uses, distilled too (0: the training texts only)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "ffn_width"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= 1:
                raise ValueError(f"{name} must be within (0, 1], got {v}")


def _attn_parts(layer) -> tuple:  # noqa: ANN001 - an encoder layer
    """(query, key, value, output) Linear modules and the self-attention module of one layer."""
    att = layer.attention
    if hasattr(att, "attn"):  # MPNet
        a = att.attn
        return a.q, a.k, a.v, a.o, a
    s = att.self  # BERT family
    return s.query, s.key, s.value, att.output.dense, s


def importance(model: MultiExitModel, tokenizer, splits: Splits, texts: int, max_length: int, batch: int = 16):  # noqa: ANN001, ANN201
    """Per layer: head importance [heads] and FFN neuron importance [intermediate] (see the module docstring)."""
    import torch
    import torch.nn.functional as F  # noqa: N812
    from tqdm import tqdm

    ds = splits.train.subset(np.arange(min(texts, len(splits.train))))
    items = _encode(tokenizer, ds, max_length)
    labels = torch.tensor(ds.labels)
    cfg = model.encoder.config
    head_size = cfg.hidden_size // cfg.num_attention_heads
    layers = model.encoder.encoder.layer
    heads_imp = [np.zeros(_attn_parts(lyr)[0].weight.shape[0] // head_size) for lyr in layers]
    ffn_imp = [np.zeros(lyr.intermediate.dense.weight.shape[0]) for lyr in layers]
    norm = float(sum(model.layers))
    model.eval()  # no dropout: the gradient of the model as it is
    for start in tqdm(range(0, len(items), batch), desc="importance", unit="batch"):
        idx = np.arange(start, min(start + batch, len(items)))
        outs = model(**_collate(tokenizer, [items[i] for i in idx]))
        loss = sum(
            (layer / norm) * F.cross_entropy(o, labels[idx]) for o, layer in zip(outs, model.layers, strict=True)
        )
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for i, lyr in enumerate(layers):
                q, k, v, o, _ = _attn_parts(lyr)
                per_row = sum((m.weight * m.weight.grad).sum(1) + m.bias * m.bias.grad for m in (q, k, v))
                per_col = (o.weight * o.weight.grad).sum(0)
                heads_imp[i] += (per_row + per_col).view(-1, head_size).sum(1).abs().numpy()
                fi, fo = lyr.intermediate.dense, lyr.output.dense
                neuron = (
                    (fi.weight * fi.weight.grad).sum(1) + fi.bias * fi.bias.grad + (fo.weight * fo.weight.grad).sum(0)
                )
                ffn_imp[i] += neuron.abs().numpy()
    model.zero_grad()
    return heads_imp, ffn_imp


def prune(model: MultiExitModel, heads_imp: list, ffn_imp: list, width: float, ffn_width: float) -> dict:
    """Prune ``model`` in place to the most important heads and neurons; returns what was kept."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    cfg = model.encoder.config
    n_heads = cfg.num_attention_heads
    keep_h = max(1, round(width * n_heads))
    keep_f = max(1, round(ffn_width * cfg.intermediate_size))
    to_prune = {}
    for i, imp in enumerate(heads_imp):
        order = np.argsort(-imp, kind="stable")
        to_prune[i] = sorted(int(h) for h in order[keep_h:])
    model.encoder.prune_heads({i: h for i, h in to_prune.items() if h})
    for i, lyr in enumerate(model.encoder.encoder.layer):
        keep = torch.tensor(sorted(np.argsort(-ffn_imp[i], kind="stable")[:keep_f].tolist()), dtype=torch.long)
        lyr.intermediate.dense = prune_linear_layer(lyr.intermediate.dense, keep, dim=0)
        lyr.output.dense = prune_linear_layer(lyr.output.dense, keep, dim=1)
    cfg.intermediate_size = keep_f
    model._heads_kept = [[h for h in range(n_heads) if h not in set(to_prune[i])] for i in range(len(heads_imp))]
    return {"heads_per_layer": keep_h, "of_heads": n_heads, "ffn_per_layer": keep_f}


def _key(checkpoint: Path, plan: SlenderPlan, splits: Splits) -> str:
    h = hashlib.sha256(json.dumps(plan.__dict__, sort_keys=True).encode())
    files = sorted((p.name, p.stat().st_size) for p in checkpoint.iterdir() if p.is_file())
    h.update(json.dumps([str(checkpoint.resolve()), files]).encode())
    h.update(splits.fingerprint.encode())
    return h.hexdigest()[:12]


def slenderize(checkpoint: Path, plan: SlenderPlan, splits: Splits, cache_dir: Path, max_length: int) -> TrainResult:
    """Prune ``checkpoint`` (cached) and retrain it with distillation from it (cached, resumable)."""
    import torch
    from transformers import AutoTokenizer

    checkpoint = Path(checkpoint)
    if not is_multi_exit(checkpoint):
        raise MultiExitError(f"{checkpoint} is not a multi-exit checkpoint (train one with elang train --exits)")
    pruned_dir = Path(cache_dir) / "slender" / f"{checkpoint.parent.name}-{_key(checkpoint, plan, splits)}" / "pruned"
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    teacher = MultiExitModel.load(checkpoint)
    layers = teacher.layers
    full_cfg = copy.deepcopy(teacher.encoder.config)  # pruning below changes the teacher's in place
    if not (pruned_dir / "config.json").is_file():
        torch.manual_seed(plan.seed)
        log.info("importance of heads and FFN neurons on %d training texts", plan.importance_texts)
        h_imp, f_imp = importance(teacher, tokenizer, splits, plan.importance_texts, max_length)
        kept = prune(teacher, h_imp, f_imp, plan.width, plan.ffn_width or plan.width)
        tmp = pruned_dir.with_name("pruned.tmp")
        teacher.save(tmp, extra={"slenderized_from": str(checkpoint), "kept": kept})
        tokenizer.save_pretrained(tmp)
        names = json.loads((checkpoint / "labels.json").read_text())
        save_label_map(tmp, [names[str(i)] for i in range(len(names))])
        tmp.rename(pruned_dir)
        log.info("pruned to %s in %s", kept, pruned_dir)
    recipe = Recipe(
        base=str(pruned_dir),
        exits=layers,
        epochs=plan.epochs,
        lr=plan.lr,
        batch_size=plan.batch_size,
        max_length=max_length,
        distill_from=str(checkpoint.resolve()),
        distill_unlabelled=plan.unlabelled,
        distill_alpha=0.5,
        exit_distill=0.0,  # every exit learns from its own teacher exit instead
        seed=plan.seed,
        patience=2,
    )
    result = train_classifier(recipe, splits, cache_dir)
    student = MultiExitModel.load(result.checkpoint)
    mean_len = float(np.mean([len(x["input_ids"]) for x in _encode(tokenizer, splits.test, max_length)]))
    full = exit_flops(full_cfg, layers, mean_len)
    slim = exit_flops(student.encoder.config, student.layers, mean_len)
    result.metrics["flops_share_per_exit"] = [s / full[-1] for s in slim]
    result.metrics["teacher_exit_gflops"] = [f / 1e9 for f in full]
    result.metrics["teacher_parameters"] = int(sum(p.numel() for p in MultiExitModel.load(checkpoint).parameters()))
    result.metrics["student_parameters"] = int(sum(p.numel() for p in student.parameters()))
    result.metrics["slenderized_from"] = str(checkpoint)
    (result.checkpoint.parent / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    return result
