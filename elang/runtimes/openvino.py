"""OpenVINO as the engine of a python-ort stage: the same ``model.onnx``, read by OpenVINO and
compiled for the CPU at ``fp32`` or ``bf16`` (AMX-BF16 / AVX512-BF16 where the CPU has them), or
at ``int8``: the NNCF-quantized OpenVINO IR ``model.int8.xml``/``.bin`` the export wrote beside
``model.onnx`` (``elang.export.classify.int8_openvino``; AMX-INT8 / VNNI where present), its
unquantized operations in bf16 where the CPU has it, else fp32.

``OpenVinoSession`` answers the part of ONNX Runtime's ``InferenceSession`` interface the
runtimes use (``run``, ``get_inputs``, ``get_outputs``), so ``elang.runtimes.classifier.make_session``
hands either to the same code: one runtime interface, no copy per engine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENGINES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
# OpenVINO's INFERENCE_PRECISION_HINT per precision. int8: the IR's quantized ops in int8 and the
# operations NNCF left unquantized (attention's MatMuls, softmax, norms) in bf16, where the CPU
# has bf16 (AMX-BF16 / AVX512-BF16; ``precision_hint`` falls back to f32 on one without): int8
# with its rest in f32 was slower than plain bf16 at the small batches a server sees (BENCHMARKS 10.4).
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}
INT8_IR = "model.int8.xml"  # + model.int8.bin: the int8 stage's OpenVINO IR, beside model.onnx
INT8_FILES = (INT8_IR, "model.int8.bin")
NATIVE_IR_FILES = ("model.xml", "model.bin")  # the same IR where the NGC image's OpenVINO backend reads it


def model_file(onnx_path: Path, precision: str) -> Path:
    """The file OpenVINO reads for ``precision``: the int8 IR beside ``onnx_path`` (a python-ort
    stage's name for it, or the native backend's), else the ONNX."""
    if precision != "int8":
        return onnx_path
    for name in (INT8_IR, NATIVE_IR_FILES[0]):
        if (onnx_path.parent / name).is_file():
            return onnx_path.parent / name
    raise FileNotFoundError(
        f"{onnx_path.parent / INT8_IR} not found: precision int8 serves the quantized IR that `elang export "
        "--engine openvino --precision int8` writes beside model.onnx"
    )


def precision_hint(precision: str, core: Any) -> str:
    """The INFERENCE_PRECISION_HINT to compile ``precision`` with on this CPU: int8's bf16 rest
    only where OpenVINO reports BF16 among the CPU's capabilities."""
    hint = PRECISION_HINTS[precision]
    if precision == "int8" and hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "f32"
    return hint


@dataclass(frozen=True)
class _Port:
    name: str
    shape: list[Any]


def check_engine(engine: str, precision: str) -> None:
    """Refuse an engine/precision pair no stage can run, naming what can."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if engine == "onnxruntime" and precision != "fp32":
        raise ValueError(
            f"precision {precision} needs engine openvino: ONNX Runtime's CPU provider runs these graphs in fp32 "
            "(for int8 with ONNX Runtime, export with --quantize int8|int8-static)"
        )


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, answering like an ``InferenceSession``."""

    def __init__(self, onnx_path: str | Path, precision: str = "fp32", threads: int = 0) -> None:
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover - the serve extra installs it
            raise ImportError("engine openvino needs the openvino package: pip install 'elang-serve[serve]'") from exc
        check_engine("openvino", precision)
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} not found")
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision_hint(precision, core), "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        model = core.read_model(str(model_file(onnx_path, precision)))
        self.precision = precision
        self._compiled = core.compile_model(model, "CPU", config)
        self._inputs = [_Port(p.get_any_name(), _shape(p)) for p in self._compiled.inputs]
        self._outputs = [_Port(p.get_any_name(), _shape(p)) for p in self._compiled.outputs]
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: callers from several threads take turns

    def get_inputs(self) -> list[_Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Port]:
        return list(self._outputs)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``InferenceSession.run``: the named outputs (all when None), as float32/int arrays."""
        with self._lock:
            result = self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
            by_name = {p.get_any_name(): np.array(v) for p, v in result.items()}
        names = output_names or [o.name for o in self._outputs]
        return [by_name[n] for n in names]


def _shape(port: Any) -> list[Any]:
    dims = []
    for d in port.get_partial_shape():
        dims.append(d.get_length() if d.is_static else None)
    return dims
