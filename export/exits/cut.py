"""Export a multi-exit checkpoint as segments (one ONNX graph per exit), checked exit by exit.

``export_segments`` cuts the encoder at the chosen exits (default: all of the checkpoint's),
exports each segment with ``torch.onnx.export`` (dynamic batch and token axes), and compares
ONNX Runtime with PyTorch on real texts: every exit's logits must agree within ``atol``
(1e-4), or the export is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang.core.identity import file_identity
from elang.export.classify.onnx import DEFAULT_ATOL, ExportError
from elang.export.exits.model import MultiExitError, MultiExitModel, exit_flops, read_exits
from elang.runtimes.classifier import ONNX_FILE
from elang.runtimes.segments import (
    IN_HIDDEN,
    IN_IDS,
    IN_MASK,
    OUT_HIDDEN,
    OUT_LOGITS,
    Segment,
    SegmentInfo,
    all_exit_logits,
)

log = logging.getLogger(__name__)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "labels.json")


@dataclass(frozen=True)
class SegmentReport:
    exits: tuple[int, ...]
    texts: int
    max_abs_diff: list[float]  # per exit
    agreement: list[float]  # argmax agreement per exit
    atol: float

    @property
    def ok(self) -> bool:
        return max(self.max_abs_diff) <= self.atol

    def lines(self) -> list[str]:
        return [
            f"exit {layer}: max |ONNX - PyTorch| = {d:.2e}, argmax agreement {a:.2%} on {self.texts} texts"
            for layer, d, a in zip(self.exits, self.max_abs_diff, self.agreement, strict=True)
        ]


def _modules(model: MultiExitModel, cuts: tuple[int, ...]):  # noqa: ANN202
    """One torch module per segment (the model and its exit head as submodules, so tracing sees parameters)."""
    import torch

    class Seg(torch.nn.Module):
        def __init__(self, start: int, end: int) -> None:
            super().__init__()
            self.model, self.head = model, model.heads[model.layers.index(end)]
            self.start, self.end = start, end

        def forward(self, first_in, attention_mask):  # noqa: ANN001, ANN202
            hidden = self.model.embed(first_in) if self.start == 0 else first_in
            hidden = self.model.run_layers(hidden, attention_mask, self.start, self.end)
            return self.head(hidden), hidden

    # eval(): the exporter restores each module's mode afterwards, and a new module is in training mode.
    return [Seg(a, b).eval() for a, b in zip((0, *cuts[:-1]), cuts, strict=True)]


def export_segments(
    checkpoint: str | Path,
    out_dir: str | Path,
    texts: list[str],
    exits: tuple[int, ...] | None = None,
    max_length: int = 128,
    atol: float = DEFAULT_ATOL,
    opset: int = 17,
) -> SegmentReport:
    """Write ``out_dir``/seg0, seg1, ... (model.onnx + segment.json; seg0 also the tokenizer)."""
    import torch

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    meta = read_exits(checkpoint)
    trained = tuple(meta["layers"])
    cuts = tuple(exits or trained)
    missing = [e for e in cuts if e not in trained]
    if missing or list(cuts) != sorted(set(cuts)):
        raise MultiExitError(f"exits {list(cuts)}: choose increasing layers among the trained exits {list(trained)}")
    if not texts:
        raise ExportError("the parity check needs at least one text")
    model = MultiExitModel.load(checkpoint).eval()
    temps = dict(zip(trained, model.temperatures, strict=True))
    source = _source_identity(checkpoint)
    shares = _flops_shares(checkpoint, model, cuts, texts, max_length)
    cfg = model.encoder.config
    sample = torch.ones((2, 8), dtype=torch.long)
    for i, module in enumerate(_modules(model, cuts)):
        folder = out_dir / f"seg{i}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if i == 0:
            args, names = (sample * 5, sample), [IN_IDS, IN_MASK]
            for name in TOKENIZER_FILES:
                if (checkpoint / name).is_file():
                    shutil.copy2(checkpoint / name, folder / name)
        else:
            args, names = (torch.zeros((2, 8, cfg.hidden_size)), sample), [IN_HIDDEN, IN_MASK]
        axes = {names[0]: {0: "batch", 1: "tokens"}, IN_MASK: {0: "batch", 1: "tokens"}}
        axes.update({OUT_LOGITS: {0: "batch"}, OUT_HIDDEN: {0: "batch", 1: "tokens"}})
        with torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(folder / ONNX_FILE),
                input_names=names,
                output_names=[OUT_LOGITS, OUT_HIDDEN],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        start = 0 if i == 0 else cuts[i - 1]
        info = SegmentInfo(
            i,
            start,
            cuts[i],
            len(cuts),
            cfg.hidden_size,
            model.num_labels,
            temps[cuts[i]],
            cfg.num_hidden_layers,
            source,
            shares[i],
        )
        info.write(folder)
    return check_segments(model, out_dir, texts, cuts, max_length, atol)


def check_segments(
    model: MultiExitModel, out_dir: Path, texts: list[str], cuts: tuple[int, ...], max_length: int, atol: float
) -> SegmentReport:
    """Every exit's logits, ONNX segments chained vs the PyTorch model; refuses a mismatch."""
    import torch
    from transformers import AutoTokenizer

    model.eval()
    segs = [Segment(out_dir / f"seg{i}", max_length=max_length) for i in range(len(cuts))]
    got = all_exit_logits(segs, texts, batch=32, progress=False)
    tok = AutoTokenizer.from_pretrained(out_dir / "seg0")
    want = np.zeros_like(got)
    idx = [model.layers.index(layer) for layer in cuts]
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            enc = tok(
                texts[start : start + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            outs = model(enc["input_ids"], enc["attention_mask"])
            want[start : start + 32] = torch.stack([outs[i] for i in idx], dim=1).numpy()
    diffs = [float(np.max(np.abs(got[:, e] - want[:, e]))) for e in range(len(cuts))]
    agree = [float(np.mean(got[:, e].argmax(1) == want[:, e].argmax(1))) for e in range(len(cuts))]
    report = SegmentReport(cuts, len(texts), diffs, agree, atol)
    if not report.ok:
        raise ExportError(f"{out_dir}: segments differ from PyTorch: " + "; ".join(report.lines()))
    return report


def _flops_shares(checkpoint: Path, model: MultiExitModel, cuts: tuple[int, ...], texts: list[str], max_length: int):  # noqa: ANN202
    """Each exit's FLOPs over the full model's at full depth (a slenderized model's: its unpruned teacher's)."""

    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    mean_len = float(np.mean([len(x) for x in tok(texts, truncation=True, max_length=max_length)["input_ids"]]))
    full_cfg = model.encoder.config
    metrics = checkpoint.parent / "metrics.json"
    if metrics.is_file():
        teacher = json.loads(metrics.read_text()).get("slenderized_from")
        if teacher and Path(teacher).is_dir():
            full_cfg = AutoConfig.from_pretrained(teacher)
    reference = exit_flops(full_cfg, (full_cfg.num_hidden_layers,), mean_len)[0]
    return [f / reference for f in exit_flops(model.encoder.config, cuts, mean_len)]


def _source_identity(checkpoint: Path) -> str:
    """The checkpoint's weights (and exit heads) by content: segments cut from it at any exits share it."""

    h = hashlib.sha256()
    for path in sorted(checkpoint.glob("*.safetensors")) + sorted(checkpoint.glob("*.bin")):
        h.update(path.name.encode() + file_identity(path))
    return h.hexdigest()[:16]
