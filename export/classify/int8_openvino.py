"""int8 for engine openvino: NNCF post-training quantization of a stage's ``model.onnx`` into the
OpenVINO IR ``model.int8.xml``/``.bin`` beside it (``elang.runtimes.openvino`` serves it).

NNCF's transformer scheme (``model_type=TRANSFORMER``: SmoothQuant on the MatMuls, softmax and
LayerNorm kept in floating point, the MIXED preset: symmetric weights per channel, asymmetric
activations), its activation ranges set on the calibration split's texts, tokenized as served.
With validation texts and ``max_drop_pt``, NNCF's accuracy control then returns the operations
whose quantization changes the most answers to fp32, one at a time, until the int8 stage gives
fp32's answer (argmax) on all but ``max_drop_pt`` percent of those texts ("exclude sensitive
nodes where the accuracy needs it"). The metric is agreement with fp32, not accuracy on labels:
on 1000 texts a candidate that changes 6% of the answers can still look 0.3 pt from fp32 by
luck, and then lose a point on test (docs/BENCHMARKS.md 10.6); a changed answer can cost at most
one right answer, so agreement bounds the accuracy lost on those texts, and needs no labels.
Each quantized candidate is validated as it will be served: its unquantized rest at the stage's
OpenVINO hint (bf16 where the CPU has it), against the float model at fp32 (NNCF compiles both at
fp32 on its own, which would promise the bound for a stage nobody serves).
OpenVINO runs the quantized MatMuls with AMX-INT8 / AVX512-VNNI where the CPU has them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang.runtimes.classifier import ONNX_FILE
from elang.runtimes.openvino import INT8_IR, precision_hint

log = logging.getLogger(__name__)

CALIBRATION_TEXTS = 512  # NNCF's default subset is 300 samples; more moved nothing on the default pair
VALIDATION_TEXTS = 1000  # accuracy control's texts (each check runs them all)
BATCH = 16
# Accuracy control: validation texts (%) whose answer may differ from fp32's. 3: on MPNet-base each
# revert re-ranks every quantizer (~10 min on 2 cores), so a 1% floor did not finish in 33 min
# (BENCHMARKS 10.6); NNCF's int8 Super started at 97.6%.
DEFAULT_INT8_MAX_DROP_PT = 3.0


@dataclass
class Int8Result:
    calibration_texts: int
    validation_texts: int  # 0: no accuracy control
    max_drop_pt: float | None
    seconds: float
    int8_matmuls: int  # MatMuls whose input is quantized (the rest, attention's included, run fp32)
    matmuls: int

    def describe(self) -> str:
        what = f"OpenVINO int8 (NNCF, {self.calibration_texts} calibration texts"
        if self.validation_texts:
            what += (
                f"; accuracy control: fp32's answer on >= {100 - self.max_drop_pt:g}% of {self.validation_texts} "
                "validation texts"
            )
        return what + f"; {self.int8_matmuls} of {self.matmuls} MatMuls int8)"


def _batches(tok, names: set[str], texts: list[str], pairs: list[str] | None) -> list[dict]:  # noqa: ANN001
    out = []
    for k in range(0, len(texts), BATCH):
        enc = tok(texts[k : k + BATCH], None if pairs is None else pairs[k : k + BATCH])
        width = max(1, int(enc["attention_mask"].sum(1).max()))
        out.append({n: np.ascontiguousarray(enc[n][:, :width]) for n in names})
    return out


def _matmuls(model) -> tuple[int, int]:  # noqa: ANN001
    """(quantized, all) MatMuls: quantized ones take their input from a FakeQuantize."""
    mm = [op for op in model.get_ops() if op.get_type_name() == "MatMul"]
    q = sum(1 for op in mm if op.input_value(0).get_node().get_type_name() == "FakeQuantize")
    return q, len(mm)


def _is_quantized(model) -> bool:  # noqa: ANN001
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


@contextlib.contextmanager
def _validate_as_served(core) -> Iterator[None]:  # noqa: ANN001
    """While NNCF's accuracy control runs: compile each quantized candidate with the hint the int8
    stage is served with (``elang.runtimes.openvino.precision_hint``), the float reference at f32."""
    from nncf.quantization.algorithms.accuracy_control import openvino_backend as backend

    hint = precision_hint("int8", core)
    base = backend.OVPreparedModel

    class ServedPreparedModel(base):  # type: ignore[misc, valid-type]
        def __init__(self, model, use_fp32_precision: bool = True) -> None:  # noqa: ANN001
            if hint == "f32" or not _is_quantized(model) or not hasattr(backend, "model_has_state"):
                super().__init__(model, use_fp32_precision)
                return
            # what the base sets, its compile at the served hint (compiling twice costs minutes)
            self._stateful = backend.model_has_state(model)
            self._compiled_model = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
            self._engine = None

    backend.OVPreparedModel = ServedPreparedModel
    try:
        yield
    finally:
        backend.OVPreparedModel = base


def quantize_openvino_int8(
    folder: Path,
    texts: list[str],
    max_length: int,
    pairs: list[str] | None = None,
    validation_texts: list[str] | None = None,
    validation_pairs: list[str] | None = None,
    max_drop_pt: float | None = None,
) -> Int8Result:
    """Write ``folder/model.int8.xml`` (+ ``.bin``) from ``folder/model.onnx``; see the module doc."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ImportError(
            "precision int8 on engine openvino needs nncf and openvino: pip install 'elang-serve[serve,export]'"
        ) from exc
    from elang.runtimes.classifier import TextTokenizer

    if not texts:
        raise ValueError("int8 quantization needs calibration texts")
    folder = Path(folder)
    core = ov.Core()
    model = core.read_model(str(folder / ONNX_FILE))
    names = {p.get_any_name() for p in model.inputs}
    tok = TextTokenizer(folder, max_length)
    texts = texts[:CALIBRATION_TEXTS]
    cal = _batches(tok, names, texts, None if pairs is None else pairs[: len(texts)])
    common = {
        "preset": nncf.QuantizationPreset.MIXED,
        "model_type": nncf.ModelType.TRANSFORMER,
        "subset_size": len(cal),
    }
    t0 = time.monotonic()
    control = max_drop_pt is not None and bool(validation_texts)
    if control:
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        n = min(VALIDATION_TEXTS, len(validation_texts))
        vp = None if validation_pairs is None else validation_pairs[:n]
        feeds = _batches(tok, names, validation_texts[:n], vp)
        # The reference: fp32's own answers (the float model at fp32, as NNCF validates it).
        ref = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        items = [(f, ref(f)[ref.outputs[0]].argmax(1)) for f in feeds]
        del ref

        def validate(compiled, data) -> tuple[float, list[float]]:  # noqa: ANN001
            out = compiled.outputs[0]
            same: list[float] = []
            for batch, answers in data:
                same.append(float(np.sum(compiled(batch)[out].argmax(1) == answers)))
            return float(np.sum(same) / n), same  # per batch: texts answered as fp32 (the ranking's per-item metric)

        with _validate_as_served(core):
            quantized = nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(cal),
                nncf.Dataset(items, lambda item: item[0]),
                validate,
                max_drop=max_drop_pt / 100.0,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=50, ranking_subset_size=min(len(items), 32)
                ),
                **common,
            )
    else:
        n = 0
        quantized = nncf.quantize(model, nncf.Dataset(cal), **common)
    ov.save_model(quantized, str(folder / INT8_IR), compress_to_fp16=False)
    result = Int8Result(len(texts), n, max_drop_pt if control else None, time.monotonic() - t0, *_matmuls(quantized))
    log.info("%s in %.0f s", result.describe(), result.seconds)
    return result
