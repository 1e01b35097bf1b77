"""OpenVINO as the engine of a python-ort stage: the same ``model.onnx``, read by OpenVINO and
compiled for the CPU at ``fp32`` or ``bf16`` (AMX-BF16 / AVX512-BF16 where the CPU has them).

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
PRECISIONS = ("fp32", "bf16")
_HINT = {"fp32": "f32", "bf16": "bf16"}


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
            "(for int8 with ONNX Runtime, export with --quantize)"
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
        config = {"INFERENCE_PRECISION_HINT": _HINT[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        model = core.read_model(str(onnx_path))
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
