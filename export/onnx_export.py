"""Hugging Face checkpoint -> ONNX model folder, validated against PyTorch.

``export_checkpoint`` runs optimum's ONNX exporter (dynamic batch and sequence axes),
copies the tokenizer and config next to the model, then compares ONNX Runtime with
PyTorch on real texts and refuses the result when the logits differ by more than the
tolerance.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang.classifier import ONNX_FILE, OnnxTextClassifier

log = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-4


class ExportError(RuntimeError):
    """The checkpoint could not be exported, or the export does not match PyTorch."""


@dataclass(frozen=True)
class ParityReport:
    """ONNX Runtime vs PyTorch on the same texts."""

    texts: int
    max_abs_diff: float
    argmax_agreement: float
    atol: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.atol


def is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")
    )


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    validation_texts: list[str],
    max_length: int = 128,
    atol: float = DEFAULT_ATOL,
) -> ParityReport:
    """Export ``checkpoint`` (a local HF text-classification folder) to ``out_dir``/model.onnx."""
    from optimum.exporters.onnx import main_export

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not is_checkpoint(checkpoint):
        raise ExportError(f"{checkpoint} is not a Hugging Face checkpoint folder (needs config.json and weights)")
    with tempfile.TemporaryDirectory(prefix="elang-export-") as tmp:
        try:
            main_export(str(checkpoint), output=tmp, task="text-classification", do_validation=False)
        except Exception as exc:  # noqa: BLE001 - report optimum's reason with the checkpoint
            raise ExportError(f"optimum could not export {checkpoint}: {exc}") from exc
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in Path(tmp).iterdir():
            if item.is_file():
                shutil.copy2(item, out_dir / item.name)
    report = check_parity(checkpoint, out_dir, validation_texts, max_length, atol)
    if not report.ok:
        raise ExportError(
            f"{out_dir / ONNX_FILE}: ONNX Runtime differs from PyTorch by {report.max_abs_diff:.3g} "
            f"(> {atol:g}) on {report.texts} texts"
        )
    return report


def check_parity(
    checkpoint: Path, onnx_dir: Path, texts: list[str], max_length: int = 128, atol: float = DEFAULT_ATOL
) -> ParityReport:
    """Max absolute logit difference between PyTorch and ONNX Runtime on ``texts``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    if not texts:
        raise ExportError("parity check needs at least one text")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    onnx_model = OnnxTextClassifier(onnx_dir, max_length=max_length)
    diffs, agree = [], 0
    for start in range(0, len(texts), 32):
        batch = texts[start : start + 32]
        feeds = onnx_model.tokenizer(batch)
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(feeds[k]) for k in onnx_model.input_names}).logits.numpy()
        got = onnx_model(batch)
        diffs.append(float(np.max(np.abs(ref - got))))
        agree += int(np.sum(ref.argmax(1) == got.argmax(1)))
    return ParityReport(len(texts), max(diffs), agree / len(texts), atol)
