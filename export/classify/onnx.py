"""Hugging Face checkpoint -> ONNX model folder, validated against PyTorch.

``export_checkpoint`` runs optimum's ONNX exporter (dynamic batch and sequence axes),
copies the tokenizer and config next to the model, then compares ONNX Runtime with
PyTorch on real texts and refuses the result when the logits differ by more than the
tolerance.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang.runtimes.classifier import ONNX_FILE, OnnxTextClassifier, logits_in_batches

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
    validation_pairs: list[str] | None = None,
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
    report = check_parity(checkpoint, out_dir, validation_texts, max_length, atol, validation_pairs)
    if not report.ok:
        raise ExportError(
            f"{out_dir / ONNX_FILE}: ONNX Runtime differs from PyTorch by {report.max_abs_diff:.3g} "
            f"(> {atol:g}) on {report.texts} texts"
        )
    return report


def check_parity(
    checkpoint: Path,
    onnx_dir: Path,
    texts: list[str],
    max_length: int = 128,
    atol: float = DEFAULT_ATOL,
    pairs: list[str] | None = None,
) -> ParityReport:
    """Max absolute logit difference between PyTorch and ONNX Runtime on ``texts``.

    The serving tokenizer's ids are first compared with the training tokenizer's
    (``AutoTokenizer`` of the checkpoint, truncated at ``max_length`` as training does): a text
    tokenized differently is an ExportError naming it, since the logits would then agree on
    inputs the model was never trained on."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not texts:
        raise ExportError("parity check needs at least one text")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    train_tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    onnx_model = OnnxTextClassifier(onnx_dir, max_length=max_length)
    diffs, agree = [], 0
    for start in range(0, len(texts), 32):
        batch = texts[start : start + 32]
        batch_pairs = None if pairs is None else pairs[start : start + 32]
        feeds = onnx_model.tokenizer(batch, batch_pairs)
        trained = train_tokenizer(batch, batch_pairs, truncation=True, max_length=max_length)["input_ids"]
        for i, want in enumerate(trained):
            got = feeds["input_ids"][i][feeds["attention_mask"][i] == 1].tolist()
            if got != list(want):
                at = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                raise ExportError(
                    f"the serving tokenizer differs from the training tokenizer on validation text {start + i} "
                    f"({batch[i][:60]!r}): at token {at}, serving {got[at : at + 5]} vs training {list(want[at : at + 5])} "
                    f"({len(got)} vs {len(want)} tokens, max length {max_length})"
                )
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(feeds[k]) for k in onnx_model.input_names}).logits.numpy()
        got = onnx_model(batch, batch_pairs)
        diffs.append(float(np.max(np.abs(ref - got))))
        agree += int(np.sum(ref.argmax(1) == got.argmax(1)))
    return ParityReport(len(texts), max(diffs), agree / len(texts), atol)


# FFN output projections (layer.N/output/dense), not the attention output ones: left in fp32 by
# default when quantizing (docs/EXPORT.md, docs/BENCHMARKS.md).
FFN_OUTPUT_MATMUL = re.compile(r"layer\.\d+/output/dense/MatMul$")
OPTIMIZE_LEVELS = ("none", "basic", "extended", "all")


def ffn_output_matmuls(onnx_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and FFN_OUTPUT_MATMUL.search(n.name)]


def quantize_int8(src: Path, dst: Path, exclude: str = "ffn-output", per_channel: bool = True) -> list[str]:
    """Dynamic int8 quantization of ``src`` into ``dst``; returns the node names left in fp32.

    ``exclude``: ``ffn-output`` (keep the FFN output MatMuls in fp32) or ``none``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if exclude not in ("ffn-output", "none"):
        raise ExportError(f"unknown quantization exclusion {exclude!r}; choose ffn-output or none")
    nodes = ffn_output_matmuls(src) if exclude == "ffn-output" else []
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=nodes or None
    )
    return nodes


QUANTIZE_MODES = ("int8", "int8-static")  # dynamic (weights int8, activations at run time), static QDQ
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
STATIC_CALIBRATION_TEXTS = 512  # texts whose activations set the static ranges


def quantize_int8_static(
    src: Path,
    dst: Path,
    model_dir: Path,
    texts: list[str],
    max_length: int,
    exclude: str = "ffn-output",
    method: str = "minmax",
    per_channel: bool = True,
    batch: int = 16,
    pairs: list[str] | None = None,
) -> tuple[list[str], int]:
    """Static int8 QDQ quantization of ``src`` into ``dst``, the activation ranges calibrated on
    ``texts`` (tokenized as served, from ``model_dir``); returns the node names left in fp32 and
    how many texts set the ranges.

    Only MatMuls are quantized (weights int8 per output channel, activations uint8 with fixed
    ranges: ONNX Runtime's U8S8 kernels, VNNI/AMX where the CPU has them); LayerNorm, softmax,
    GELU and the adds stay fp32. ``exclude``: ``ffn-output`` keeps the FFN output MatMuls in
    fp32 (their inputs, after GELU, have the widest range), ``none`` quantizes every MatMul.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from elang.runtimes.classifier import TextTokenizer

    if exclude not in ("ffn-output", "none"):
        raise ExportError(f"unknown quantization exclusion {exclude!r}; choose ffn-output or none")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}  # fmt: skip
    if method not in methods:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if not texts:
        raise ExportError("static int8 quantization needs calibration texts")
    import onnx

    names = {i.name for i in onnx.load(str(src), load_external_data=False).graph.input}
    # Every batch padded to max_length: the histogram methods need one shape across batches.
    tok = TextTokenizer(model_dir, max_length, pad_to_max_length=True)
    texts = texts[:STATIC_CALIBRATION_TEXTS]
    batch = max(1, min(batch, len(texts)))
    if method != "minmax":  # the histogram methods need one shape across batches: whole batches only
        texts = texts[: len(texts) // batch * batch]
    feeds = []
    for k in range(0, len(texts), batch):
        enc = tok(texts[k : k + batch], None if pairs is None else pairs[k : k + batch])
        feeds.append({n: v for n, v in enc.items() if n in names})

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    nodes = ffn_output_matmuls(src) if exclude == "ffn-output" else []
    # ONNX Runtime's pre-processing (shape inference, graph clean-up) before QDQ insertion, as its
    # quantization guide asks; node names are kept, so the exclusions still apply.
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepped = Path(dst).with_name(Path(dst).stem + "-pre.onnx").resolve()
    src, dst = Path(src).resolve(), Path(dst).resolve()
    # Both steps write scratch files (sym_shape_infer_temp.onnx, external-data blobs) into the
    # working directory: run them in a scratch one, so nothing is left where the user stood.
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="elang-quant-") as scratch:
        os.chdir(scratch)
        try:
            quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)  # shape inference + clean-up
            quantize_static(
                str(prepped),
                str(dst),
                Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["MatMul"],
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=nodes or None,
                calibrate_method=methods[method],
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        finally:
            os.chdir(here)
    prepped.unlink(missing_ok=True)
    return nodes, len(texts)


def optimize_graph(src: Path, dst: Path, level: str) -> None:
    """Write ONNX Runtime's offline-optimized graph (``basic``/``extended``/``all``) to ``dst``.

    ``all`` includes layout optimizations specific to the machine that runs it: use it
    only when the serving hardware is the exporting hardware.
    """
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise ExportError(f"unknown optimization level {level!r}; choose one of {', '.join(OPTIMIZE_LEVELS)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[level]
    opts.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class AgreementReport:
    """A transformed (e.g. int8) model against the fp32 one on labelled texts."""

    texts: int
    argmax_agreement: float
    accuracy_fp32: float | None
    accuracy_new: float | None
    max_abs_diff: float
    logit_scale: float = 1.0  # max |fp32 logit|: max_abs_diff / logit_scale is the relative error

    @property
    def accuracy_delta(self) -> float | None:
        if self.accuracy_fp32 is None or self.accuracy_new is None:
            return None
        return self.accuracy_new - self.accuracy_fp32


def compare_models(
    reference_dir: Path,
    candidate_dir: Path,
    texts: list[str],
    labels: np.ndarray | None,
    max_length: int = 128,
    engine: str = "onnxruntime",
    precision: str = "fp32",
) -> AgreementReport:
    """Run two ONNX model folders on the same texts and compare their answers (the candidate on
    ``engine`` at ``precision``: what the stage will serve)."""
    ref_model = OnnxTextClassifier(reference_dir, max_length=max_length)
    new_model = OnnxTextClassifier(candidate_dir, max_length=max_length, engine=engine, precision=precision)
    ref, new = logits_in_batches(ref_model, texts), logits_in_batches(new_model, texts)
    acc = (lambda lg: float(np.mean(lg.argmax(1) == labels))) if labels is not None else (lambda lg: None)
    return AgreementReport(
        texts=len(texts),
        argmax_agreement=float(np.mean(ref.argmax(1) == new.argmax(1))),
        accuracy_fp32=acc(ref),
        accuracy_new=acc(new),
        max_abs_diff=float(np.max(np.abs(ref - new))),
        logit_scale=float(np.max(np.abs(ref))),
    )
