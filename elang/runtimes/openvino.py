"""OpenVINO as the engine of a python-ort stage: the same ``model.onnx``, read by OpenVINO and
compiled for the CPU at ``fp32`` or ``bf16`` (AMX-BF16 / AVX512-BF16 where the CPU has them), or
at ``int8``: the NNCF-quantized OpenVINO IR ``model.int8.xml``/``.bin`` the export wrote beside
``model.onnx`` (``elang.export.classify.int8_openvino``; AMX-INT8 / VNNI where present), its
unquantized operations in bf16 where the CPU has it, else fp32.

``OpenVinoSession`` answers the part of ONNX Runtime's ``InferenceSession`` interface the
runtimes use (``run``, ``get_inputs``, ``get_outputs``), so ``elang.runtimes.classifier.make_session``
hands either to the same code: one runtime interface, no copy per engine.

``streams`` > 1 compiles for throughput: that many CPU streams (``NUM_STREAMS``), the threads
divided among them, one infer request each. ``run`` then cuts a batch's rows into up to
``streams`` parts that run at once, one per stream, and joins their outputs in order; callers on
several threads share the requests. Measured on a 2-core CPU (docs/BENCHMARKS.md 10.5): two
callers on two one-thread streams did up to 1.35x the work of one two-thread stream at batch 1,
one call split over them at most 1.1x, and through the server no layout beat the default.
"""

from __future__ import annotations

import queue
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


def check_engine(engine: str, precision: str, streams: int = 1) -> None:
    """Refuse an engine/precision/streams combination no stage can run, naming what can."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if engine == "onnxruntime" and precision != "fp32":
        raise ValueError(
            f"precision {precision} needs engine openvino: ONNX Runtime's CPU provider runs these graphs in fp32 "
            "(for int8 with ONNX Runtime, export with --quantize int8|int8-static)"
        )
    check_streams(streams)
    if engine == "onnxruntime" and streams != 1:
        raise ValueError(f"streams {streams} needs engine openvino: ONNX Runtime's stages run one stream")


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, answering like an ``InferenceSession``."""

    def __init__(self, onnx_path: str | Path, precision: str = "fp32", threads: int = 0, streams: int = 1) -> None:
        try:
            import openvino as ov
        except ImportError as exc:  # pragma: no cover - the serve extra installs it
            raise ImportError("engine openvino needs the openvino package: pip install 'elang-serve[serve]'") from exc
        check_engine("openvino", precision)
        check_streams(streams, threads)
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path} not found")
        core = ov.Core()
        model = core.read_model(str(model_file(onnx_path, precision)))
        self.precision = precision
        self.streams = int(streams)
        self._compiled = core.compile_model(model, "CPU", compile_config(precision_hint(precision, core), threads, streams))
        self._inputs = [_Port(p.get_any_name(), _shape(p)) for p in self._compiled.inputs]
        self._outputs = [_Port(p.get_any_name(), _shape(p)) for p in self._compiled.outputs]
        # One infer request per stream; callers from several threads take whichever is idle.
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.streams):
            self._idle.put(self._compiled.create_infer_request())

    def get_inputs(self) -> list[_Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[_Port]:
        return list(self._outputs)

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``InferenceSession.run``: the named outputs (all when None), as float32/int arrays. With
        several streams, the rows run as that many parts at once (every input and output has the
        rows on axis 0, as the stages' graphs do)."""
        names = output_names or [o.name for o in self._outputs]
        parts = row_parts(feeds, self.streams)
        requests = [self._idle.get()]  # at least one; more where idle, up to one per part
        while len(requests) < len(parts):
            try:
                requests.append(self._idle.get_nowait())
            except queue.Empty:
                break
        try:
            outs: list[dict[str, np.ndarray]] = []
            if len(parts) == 1:  # one part: the synchronous call, as with one stream
                result = requests[0].infer({k: np.ascontiguousarray(v) for k, v in parts[0].items()})
                by_name = {p.get_any_name(): np.array(v) for p, v in result.items()}
                return [by_name[n] for n in names]
            for start in range(0, len(parts), len(requests)):
                running = list(zip(requests, parts[start : start + len(requests)]))
                for request, part in running:
                    request.start_async({k: np.ascontiguousarray(v) for k, v in part.items()})
                for request, _ in running:
                    request.wait()
                    outs.append({p.get_any_name(): np.array(v) for p, v in request.results.items()})
        finally:
            for request in requests:
                self._idle.put(request)
        return [np.concatenate([o[n] for o in outs], axis=0) for n in names]


def check_streams(streams: int, threads: int = 0) -> None:
    """Refuse a stream count no CPU plugin can compile, naming the problem."""
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"streams must be an integer >= 1, got {streams!r}")
    if threads and streams > threads:
        raise ValueError(f"streams ({streams}) cannot exceed threads ({threads}): each stream needs a thread")


def compile_config(hint: str, threads: int = 0, streams: int = 1) -> dict[str, Any]:
    """OpenVINO CPU properties of a stage: one latency stream on every core (or ``threads``), or
    ``streams`` throughput streams sharing them. The native backend's config writes the same.

    A stage given a thread count shares the cores with other stages or instances, and OpenVINO
    pins each compiled model's threads to the first cores: two one-thread copies then ran on one
    core, at the speed of one (docs/BENCHMARKS.md 10.5), so such a stage is not pinned. A stage on
    every core keeps OpenVINO's pinning (turning it off there was slower, 10.4)."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint}
    if streams > 1:
        config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=str(streams))
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
        config["ENABLE_CPU_PINNING"] = False
    return config


def row_parts(feeds: dict[str, np.ndarray], parts: int) -> list[dict[str, np.ndarray]]:
    """``feeds`` cut along axis 0 into at most ``parts`` contiguous parts of near-equal rows."""
    rows = len(next(iter(feeds.values()))) if feeds else 0
    n = max(1, min(int(parts), rows))
    if n == 1:
        return [feeds]
    bounds = np.linspace(0, rows, n + 1).round().astype(int)
    return [{k: v[a:b] for k, v in feeds.items()} for a, b in zip(bounds[:-1], bounds[1:])]


def _shape(port: Any) -> list[Any]:
    dims = []
    for d in port.get_partial_shape():
        dims.append(d.get_length() if d.is_static else None)
    return dims
