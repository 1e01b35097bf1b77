"""Model repository writer: turns Swift/Super model folders into a Triton repository.

A model folder holds ``model.onnx`` (text-classification logits), ``tokenizer.json``
and optionally the other Hugging Face tokenizer/config files. For each stage the
writer emits, by runtime:

* ``python-ort`` (runs everywhere, including the CPU-only server from PyPI): one
  Python-backend model that tokenizes and runs ONNX Runtime in one step;
* ``onnxruntime`` (NGC container): an ensemble ``NAME`` of ``NAME_tokenizer``
  (Python backend) and ``NAME_onnx`` (``platform: "onnxruntime_onnx"``);
* ``tensorrt`` (NGC container with a GPU): the same ensemble with ``NAME_onnx`` as
  ``platform: "tensorrt_plan"``; the engine ``model.plan`` is built on the target GPU by the
  ``build_engine.sh`` written next to ``model.onnx`` (docs/EXPORT.md);
* ``python-ensemble``: the same two-step ensemble with the ONNX step run by ONNX
  Runtime in the Python backend, so the layout can be served and measured anywhere
  (docs/ARCHITECTURE.md compares it with ``python-ort``).

Both answer the same contract (TEXT -> LOGITS) under the stage's name, and the
`elang` router (Python backend, BLS) calls the stages by name. Configs are built
as ``ModelConfig`` protobufs and written with ``text_format``, so they always parse.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from elang import contract as c
from elang.core.atomic import replace_dir, staged_repository, write_text
from elang.core.settings import DEFAULT_ENERGY_BUCKETS, RouterSettings, format_stage_map
from elang.repository.config import (  # noqa: F401 - RepositoryError and parse_config are imported from here too
    RepositoryError,
    config_path,
    parameter,
    parameters,
    parse_config,
    read_config,
    render_config,
    set_parameters,
    stage_max_batches,
    stages_declare,
)
from elang.runtimes.classifier import ONNX_FILE, TOKEN_INPUTS, TOKENIZER_FILE
from elang.runtimes.openvino import INT8_FILES, NATIVE_IR_FILES, PRECISION_HINTS, compile_config
from elang.tasks import get_task, task_from_parameters

log = logging.getLogger(__name__)

RUNTIMES = ("python-ort", "onnxruntime", "tensorrt", "openvino", "python-ensemble")
# Files copied from a model folder next to the model (the ONNX file is handled apart).
SIDE_FILES = (
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
    "labels.json",
)
_DTYPE = {
    "TYPE_STRING": mc.TYPE_STRING,
    "TYPE_FP32": mc.TYPE_FP32,
    "TYPE_INT64": mc.TYPE_INT64,
    "TYPE_INT32": mc.TYPE_INT32,
    "TYPE_BOOL": mc.TYPE_BOOL,
}


# Queue policies: none by default, on routers and stages alike. A policy bounds a model's
# queue (requests beyond max_queue_size are refused at once, UNAVAILABLE "Exceeds maximum queue
# size"; those that waited past the timeout too), but in Triton 2.51 any policy (a size, a
# timeout or allow_timeout_override) turns off the dynamic batcher's prefetch, and a request
# that arrives while the instance is busy can then wait out the batcher's 500 ms idle wait (a
# lost wake-up): closed-loop clients all stall together (docs/BENCHMARKS.md section 9). The
# router bounds what it sends the stages itself (stage_inflight, stage_queue_rows,
# stage_timeout_s); `elang export --max-queue-size` / `elang tune` set a policy where an operator
# wants the front door to refuse at once instead.
DEFAULT_QUEUE_TIMEOUT_S = 0.0  # with max_queue_size None/0: no queue policy
QUEUE_SCOPES = ("all", "routers", "stages")  # which models `elang tune` queue knobs change


@dataclass
class ClassifierSpec:
    """One stage (Swift or Super) of the repository."""

    source: Path
    runtime: str = "python-ort"
    max_length: int = c.DEFAULT_MAX_LENGTH
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    instances: int = 1
    intra_op_threads: int = 0
    gpu: bool = False
    length_bucket: int = 0
    ort_spinning: bool = False
    max_queue_size: int | None = None  # None or 0: unbounded (no queue policy with a 0 timeout)
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S  # 0: none
    fault_injection: bool = False  # honour elang_fault_sleep_s (fault tests and benchmarks only)
    engine: str = "onnxruntime"  # python-ort: onnxruntime or openvino (elang.runtimes.openvino)
    precision: str = "fp32"  # bf16, int8 (the NNCF IR beside model.onnx): openvino only
    streams: int = 1  # openvino: CPU streams; > 1 runs each batch's rows as that many parts at once


@dataclass
class RouterSpec:
    """A router (the `elang` entry point or a named one), for every task: ``write_router``."""

    policy: str = "energy"
    threshold: str = "0.0"  # one per step, comma-separated (a multi-exit router: one for every exit)
    temperature: float | str = 1.0  # or one per stage, comma-separated
    stages: tuple[str, ...] = c.STAGES
    task: str = c.TASK_CLASSIFY
    max_new_tokens: int = 0  # generate: the cap on new tokens per row
    exit_layers: tuple[int, ...] = ()  # exits: each stage's exit layer
    max_text_bytes: int = c.DEFAULT_MAX_TEXT_BYTES
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    instances: int = 1
    stage_timeout_s: float = c.DEFAULT_STAGE_TIMEOUT_S
    calibration_version: str = "uncalibrated"
    extra_parameters: dict[str, str] = field(default_factory=dict)
    name: str = c.ROUTER_MODEL  # another name serves a variant (e.g. elang_super_int8)
    # Which stages run inside the router (no BLS hop) when they can: "default" (the task's:
    # the first stage of a pair, every segment of a multi-exit router), "first", "all", "none".
    inline: str = "default"
    max_queue_size: int | None = None  # None or 0: unbounded (no queue policy with a 0 timeout)
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S  # 0: none
    stage_inflight: int = c.DEFAULT_STAGE_INFLIGHT  # calls in flight to each later stage
    stage_queue_rows: int = c.DEFAULT_STAGE_QUEUE_ROWS  # rows allowed to wait in the router per stage


@dataclass(frozen=True)
class ModelFolderInfo:
    """What the writer learns from a model folder."""

    input_names: tuple[str, ...]
    output_name: str
    num_labels: int
    labels: tuple[str, ...]


def inspect_model_folder(folder: Path) -> ModelFolderInfo:
    """Check that ``folder`` holds a usable model and read its inputs, output and labels."""
    import onnx

    folder = Path(folder)
    if not folder.is_dir():
        raise RepositoryError(f"model folder {folder} does not exist")
    for need in (ONNX_FILE, TOKENIZER_FILE):
        if not (folder / need).is_file():
            raise RepositoryError(f"model folder {folder} has no {need}")
    try:
        graph = onnx.load(str(folder / ONNX_FILE), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad model file
        raise RepositoryError(f"{folder / ONNX_FILE} is not a readable ONNX model: {exc}") from None
    initializers = {i.name for i in graph.initializer}
    inputs = tuple(i.name for i in graph.input if i.name not in initializers)
    unknown = [n for n in inputs if n not in TOKEN_INPUTS]
    if unknown:
        raise RepositoryError(f"{folder / ONNX_FILE}: inputs {unknown} are not tokenizer outputs {TOKEN_INPUTS}")
    out = graph.output[0]
    dims = out.type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].dim_value:
        raise RepositoryError(f"{folder / ONNX_FILE}: output {out.name!r} must be [batch, num_labels] logits")
    num_labels = int(dims[1].dim_value)
    labels = tuple(str(i) for i in range(num_labels))
    cfg = folder / "config.json"
    if cfg.is_file():
        id2label = json.loads(cfg.read_text()).get("id2label") or {}
        if len(id2label) == num_labels:
            labels = tuple(str(id2label.get(str(i), id2label.get(i, i))) for i in range(num_labels))
    return ModelFolderInfo(inputs, out.name, num_labels, labels)


def add_tensor(container, spec: c.TensorSpec) -> None:  # noqa: ANN001 - a repeated ModelInput/ModelOutput field
    t = container.add()
    t.name = spec.name
    t.data_type = _DTYPE[spec.triton_dtype]
    t.dims.extend(spec.dims)


def set_batching(
    config: mc.ModelConfig,
    max_batch_size: int,
    delay_us: int,
    max_queue_size: int | None = 0,
    queue_timeout_s: float = 0.0,
) -> None:
    """Dynamic batching, with a queue policy only if a bound or a timeout is given (None: 0)."""
    if max_batch_size < 1:
        raise RepositoryError(f"{config.name}: max_batch_size must be >= 1, got {max_batch_size}")
    config.max_batch_size = max_batch_size
    config.dynamic_batching.max_queue_delay_microseconds = delay_us
    set_queue_policy(config, max_queue_size or 0, queue_timeout_s)


def set_queue_policy(config: mc.ModelConfig, max_queue_size: int, queue_timeout_s: float) -> None:
    """REJECT beyond ``max_queue_size`` waiting requests or after ``queue_timeout_s`` in the queue.

    Both 0 (no bound, no timeout): no queue policy at all, so that Triton's batcher keeps its
    prefetch (see DEFAULT_QUEUE_TIMEOUT_S above). Otherwise ``allow_timeout_override`` lets a
    caller ask for a shorter wait per request (the router passes what is left of its stage
    deadline on every call).
    """
    if max_queue_size < 0:
        raise RepositoryError(f"{config.name}: max_queue_size must be >= 0 (0: unbounded), got {max_queue_size}")
    if not queue_timeout_s >= 0:
        raise RepositoryError(f"{config.name}: queue timeout must be >= 0 s (0: none), got {queue_timeout_s}")
    if max_queue_size == 0 and queue_timeout_s == 0:
        config.dynamic_batching.ClearField("default_queue_policy")
        return
    policy = config.dynamic_batching.default_queue_policy
    policy.timeout_action = mc.ModelQueuePolicy.REJECT
    policy.default_timeout_microseconds = int(round(queue_timeout_s * 1e6))
    policy.allow_timeout_override = True
    policy.max_queue_size = int(max_queue_size)


def set_instances(config: mc.ModelConfig, count: int, gpu: bool = False) -> None:
    group = config.instance_group.add()
    group.count = count
    group.kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU


def write_model(repo: Path, config: mc.ModelConfig, python_class: str | None = None) -> Path:
    """Write ``config`` (and a one-line model.py) under ``repo``, normally a staged repository."""
    folder = repo / config.name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(render_config(config))
    if python_class:
        module, cls = python_class.rsplit(".", 1)
        (folder / "1" / "model.py").write_text(
            f'"""Triton adapter generated by elang-serve: the logic lives in {module}."""\n\n'
            f"from {module} import {cls}  # noqa: F401\n"
        )
    return folder / "1"


def _copy_int8_ir(source: Path, dest: Path, names: tuple[str, str]) -> None:
    """The int8 OpenVINO IR ``elang export --engine openvino --precision int8`` wrote, as ``names``."""
    for have, want in zip(INT8_FILES, names):
        if not (source / have).is_file():
            raise RepositoryError(
                f"{source / have} not found: precision int8 serves the IR that `elang export --engine openvino "
                "--precision int8` quantizes"
            )
        shutil.copy2(source / have, dest / want)


def _copy_side_files(source: Path, dest: Path) -> None:
    for name in SIDE_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)


def write_classifier(repo: Path, name: str, spec: ClassifierSpec) -> ModelFolderInfo:
    """Write stage ``name`` (TEXT -> LOGITS) into ``repo`` for ``spec.runtime``."""
    if spec.runtime not in RUNTIMES:
        raise RepositoryError(f"unknown runtime {spec.runtime!r}; choose one of {', '.join(RUNTIMES)}")
    from elang.runtimes.openvino import check_engine

    try:  # the native openvino runtime is OpenVINO itself: any precision it takes
        check_engine("openvino" if spec.runtime == "openvino" else spec.engine, spec.precision, spec.streams)
    except ValueError as exc:
        raise RepositoryError(f"{name}: {exc}") from None
    if spec.engine != "onnxruntime" and spec.runtime != "python-ort":
        raise RepositoryError(f"{name}: engine {spec.engine} runs in python-ort stages, not runtime {spec.runtime}")
    spec.source = Path(spec.source)
    info = inspect_model_folder(spec.source)
    with staged_repository(repo) as staging:  # a running server sees the old stage or the new one
        _write_stage(staging, name, spec, info)
    return info


def _queue(spec: ClassifierSpec) -> dict:
    return {"max_queue_size": spec.max_queue_size, "queue_timeout_s": spec.queue_timeout_s}


def _write_stage(repo: Path, name: str, spec: ClassifierSpec, info: ModelFolderInfo) -> None:
    common = {
        c.PARAM_MAX_LENGTH: spec.max_length,
        c.PARAM_MAX_TEXT_BYTES: c.DEFAULT_MAX_TEXT_BYTES,
        c.PARAM_LABELS: json.dumps(list(info.labels)),
    }
    if spec.runtime == "python-ort":
        cfg = mc.ModelConfig(name=name, backend="python")
        set_batching(cfg, spec.max_batch_size, spec.max_queue_delay_us, **_queue(spec))
        add_tensor(cfg.input, c.text_input())
        for out in (*c.classifier_outputs(info.num_labels), c.truncated_output()):
            add_tensor(cfg.output, out)
        set_instances(cfg, spec.instances)
        providers = "CUDAExecutionProvider,CPUExecutionProvider" if spec.gpu else "CPUExecutionProvider"
        set_parameters(
            cfg,
            {
                **common,
                c.PARAM_INTRA_OP_THREADS: spec.intra_op_threads,
                "providers": providers,
                c.PARAM_LENGTH_BUCKET: spec.length_bucket,
                c.PARAM_ORT_SPINNING: int(spec.ort_spinning),
                c.PARAM_FAULT_INJECTION: int(spec.fault_injection),
                c.PARAM_ENGINE: spec.engine,
                c.PARAM_PRECISION: spec.precision,
                c.PARAM_STREAMS: spec.streams,
            },
        )
        version = write_model(repo, cfg, "elang.triton.classifier_model.TritonPythonModel")
        shutil.copy2(spec.source / ONNX_FILE, version / ONNX_FILE)
        _copy_side_files(spec.source, version)
        if spec.precision == "int8":  # engine openvino: the quantized IR beside the ONNX
            _copy_int8_ir(spec.source, version, INT8_FILES)
        return
    _write_native(repo, name, spec, info, common)


def _write_native(repo: Path, name: str, spec: ClassifierSpec, info: ModelFolderInfo, common: dict) -> None:
    tok_name, onnx_name = f"{name}_tokenizer", f"{name}_onnx"
    token_specs = [c.TensorSpec(n, "TYPE_INT64", int, (spec.max_length,)) for n in info.input_names]

    tok = mc.ModelConfig(name=tok_name, backend="python")
    set_batching(tok, spec.max_batch_size, spec.max_queue_delay_us, **_queue(spec))
    add_tensor(tok.input, c.text_input())
    for t in token_specs:
        add_tensor(tok.output, t)
    set_instances(tok, spec.instances)
    set_parameters(tok, {**common, "outputs": ",".join(info.input_names)})
    version = write_model(repo, tok, "elang.triton.tokenizer_model.TritonPythonModel")
    _copy_side_files(spec.source, version)

    if spec.runtime == "onnxruntime":
        onnx_cfg = mc.ModelConfig(name=onnx_name, platform="onnxruntime_onnx")
    elif spec.runtime == "tensorrt":
        onnx_cfg = mc.ModelConfig(name=onnx_name, platform="tensorrt_plan", default_model_filename=TRT_PLAN)
    elif spec.runtime == "openvino":  # the NGC image's OpenVINO backend reads the ONNX (int8: the IR) itself
        model_file = NATIVE_IR_FILES[0] if spec.precision == "int8" else ONNX_FILE
        onnx_cfg = mc.ModelConfig(name=onnx_name, backend="openvino", default_model_filename=model_file)
    else:
        onnx_cfg = mc.ModelConfig(name=onnx_name, backend="python")
    set_batching(onnx_cfg, spec.max_batch_size, spec.max_queue_delay_us, **_queue(spec))
    for t in token_specs:
        add_tensor(onnx_cfg.input, t)
    add_tensor(onnx_cfg.output, c.TensorSpec(info.output_name, "TYPE_FP32", float, (info.num_labels,)))
    set_instances(onnx_cfg, spec.instances, gpu=spec.gpu or spec.runtime == "tensorrt")
    if spec.runtime == "openvino":  # the backend hands these to OpenVINO's compile_model
        ov = compile_config(PRECISION_HINTS[spec.precision], spec.intra_op_threads, spec.streams)
        ov.pop("ENABLE_CPU_PINNING", None)  # not among the parameters the backend documents
        set_parameters(onnx_cfg, ov)
    elif spec.intra_op_threads:  # the onnxruntime backend's own parameter name
        set_parameters(onnx_cfg, {"intra_op_thread_count": spec.intra_op_threads})
    adapter = None
    if spec.runtime == "python-ensemble":
        adapter = "elang.triton.onnx_model.TritonPythonModel"
        set_parameters(onnx_cfg, {c.PARAM_ORT_SPINNING: int(spec.ort_spinning)})
    version = write_model(repo, onnx_cfg, adapter)
    shutil.copy2(spec.source / ONNX_FILE, version / ONNX_FILE)
    if spec.runtime == "openvino" and spec.precision == "int8":  # the backend reads model.xml/model.bin
        _copy_int8_ir(spec.source, version, NATIVE_IR_FILES)
    if spec.runtime == "tensorrt":
        _write_engine_script(version, info, spec)

    ens = mc.ModelConfig(name=name, platform="ensemble", max_batch_size=spec.max_batch_size)
    add_tensor(ens.input, c.text_input())
    for out in c.classifier_outputs(info.num_labels):
        add_tensor(ens.output, out)
    step = ens.ensemble_scheduling.step.add(model_name=tok_name, model_version=-1)
    step.input_map[c.TEXT] = c.TEXT
    for n in info.input_names:
        step.output_map[n] = f"_{n}"
    step = ens.ensemble_scheduling.step.add(model_name=onnx_name, model_version=-1)
    for n in info.input_names:
        step.input_map[n] = f"_{n}"
    step.output_map[info.output_name] = c.LOGITS
    set_parameters(ens, {c.PARAM_LABELS: common[c.PARAM_LABELS]})
    write_model(repo, ens)


TRT_PLAN = "model.plan"


def _write_engine_script(version: Path, info: ModelFolderInfo, spec: ClassifierSpec) -> None:
    """The TensorRT engine must be built on the GPU that serves it: write the command next to the ONNX."""

    def shapes(batch: int) -> str:
        return ",".join(f"{n}:{batch}x{spec.max_length}" for n in info.input_names)

    script = version / "build_engine.sh"
    script.write_text(
        "#!/usr/bin/env bash\n"
        "# Build model.plan from model.onnx on the GPU that will serve it (NGC TensorRT or Triton container).\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        "# trtexec: $TRTEXEC, else on PATH, else where NVIDIA's images keep it.\n"
        "TRTEXEC=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}\n"
        f'"$TRTEXEC" --onnx={ONNX_FILE} --saveEngine={TRT_PLAN} --fp16 \\\n'
        f"  --minShapes={shapes(1)} \\\n"
        f"  --optShapes={shapes(max(1, spec.max_batch_size // 2))} \\\n"
        f"  --maxShapes={shapes(spec.max_batch_size)}\n"
    )
    script.chmod(0o755)


def _python_ort_stage(repo: Path, name: str) -> mc.ModelConfig | None:
    """The config of stage ``name`` if it is a python-ort classifier in ``repo``, else None."""
    cfg_path = Path(repo) / name / "config.pbtxt"
    model_py = Path(repo) / name / "1" / "model.py"
    if not (cfg_path.is_file() and model_py.is_file() and (Path(repo) / name / "1" / ONNX_FILE).is_file()):
        return None
    cfg = parse_config(cfg_path.read_text())
    if cfg.backend != "python" or "elang.triton.classifier_model" not in model_py.read_text():
        return None
    return cfg


# The adapters of stages a router can run in its own process (elang.runtimes.inline), besides
# python-ort classifiers.
INLINE_ADAPTERS = ("elang.triton.generator_model", "elang.triton.segment_model")
INLINE_MODES = ("default", "first", "all", "none")


def inline_capable_stage(repo: Path, name: str) -> mc.ModelConfig | None:
    """The config of stage ``name`` if a router can run it in-process (a python-ort classifier,
    a generating stage or a segment of a multi-exit encoder), else None."""
    cfg = _python_ort_stage(repo, name)
    if cfg is not None:
        return cfg
    model_py = Path(repo) / name / "1" / "model.py"
    cfg_path = Path(repo) / name / "config.pbtxt"
    if not (cfg_path.is_file() and model_py.is_file()):
        return None
    source = model_py.read_text()
    if not any(adapter in source for adapter in INLINE_ADAPTERS):
        return None
    return parse_config(cfg_path.read_text())


def inline_plan(
    repos: Sequence[Path], router: str, stages: tuple[str, ...], task_name: str, mode: str
) -> list[tuple[Path, str, mc.ModelConfig]]:
    """The stages a router runs in-process under ``mode`` (``INLINE_MODES``), each as (the
    repository holding it: the first of ``repos`` that has it, its name, its config); a stage
    that cannot run inline is left to BLS, and said so."""
    if mode not in INLINE_MODES:
        raise RepositoryError(f"inline must be one of {', '.join(INLINE_MODES)}, got {mode!r}")
    if mode == "default":
        mode = get_task(task_name).inline_default
    wanted = {"none": (), "first": stages[:1], "all": stages}[mode]
    plan = []
    for stage in wanted:
        home = next((Path(r) for r in repos if (Path(r) / stage / "config.pbtxt").is_file()), Path(repos[-1]))
        cfg = inline_capable_stage(home, stage)
        if cfg is None:
            log.info("%s: stage %s cannot run inside the router; it is called over BLS", router, stage)
            continue
        plan.append((home, stage, cfg))
    return plan


def fill_inline_copy(repo: Path, stage: str, cfg: mc.ModelConfig, dest: Path) -> None:
    shutil.copytree(Path(repo) / stage / "1", dest, ignore=shutil.ignore_patterns("model.py", "__pycache__"))
    params = parameters(cfg)
    (dest / c.INLINE_STAGE_FILE).write_text(json.dumps({"stage": stage, "parameters": params}, indent=2) + "\n")


def copy_inline_stage(repo: Path, router: str, stage: str) -> None:
    """Copy stage ``stage`` (ONNX, tokenizer, config parameters) into ``router``'s version folder."""
    cfg = inline_capable_stage(repo, stage)
    if cfg is None:
        raise RepositoryError(
            f"{Path(repo) / stage} is neither a python-ort, a generating nor a segment stage; it cannot run inside {router}"
        )

    def fill(staging: Path) -> None:
        staging.rmdir()  # copytree makes it
        fill_inline_copy(repo, stage, cfg, staging)

    replace_dir(Path(repo) / router / "1" / stage, fill)


def _declare_truncation(cfg: mc.ModelConfig, repo: Path, stages: tuple[str, ...]) -> bool:
    """A classifier router declares TRUNCATED exactly when every stage does; True if it changed."""
    names = [o.name for o in cfg.output]
    want = c.LOGITS in names and stages_declare(repo, stages, c.TRUNCATED)
    if want == (c.TRUNCATED in names):
        return False
    if want:
        add_tensor(cfg.output, c.truncated_output())
    else:
        del cfg.output[names.index(c.TRUNCATED)]
    return True


def _inline_if_wanted(cfg: mc.ModelConfig, repo: Path, router: str, stages: tuple[str, ...], stage: str) -> bool:
    """A router written before ``stage`` could run in its process (the stage was missing, or was
    another kind) runs it there now if its inline mode asks for it; True if the config changed."""
    from elang.runtimes.remote import parse_remote_stages

    mode = parameter(cfg, c.PARAM_INLINE_MODE)
    inline = c.parse_names(parameter(cfg, c.PARAM_INLINE_STAGE))
    remote = parse_remote_stages(parameter(cfg, c.PARAM_REMOTE_STAGES) or None)
    if not mode or stage in inline or stage in remote:
        return False
    task = task_from_parameters(parameters(cfg)).name
    wanted = [name for _, name, _ in inline_plan([repo], router, stages, task, mode)]
    if stage not in wanted:
        return False
    cfg.parameters[c.PARAM_INLINE_STAGE].string_value = ",".join(s for s in stages if s in inline or s == stage)
    return True


def _router_stages(cfg: mc.ModelConfig) -> tuple[str, ...]:
    return c.parse_stages(parameter(cfg, c.PARAM_STAGES) or None)


def refresh_routers(repo: Path, stage: str) -> list[str]:
    """After stage ``stage`` was rewritten: every router that calls it learns its new
    ``max_batch_size`` (``stage_max_batch``) and, if it runs the stage inline, gets a fresh copy."""

    refreshed = []
    for cfg_path in sorted(Path(repo).glob("*/config.pbtxt")):
        router = cfg_path.parent.name
        if not c.is_router(router):
            continue
        cfg = parse_config(cfg_path.read_text())
        stages = _router_stages(cfg)
        if stage not in stages:
            continue
        limits = format_stage_map(stage_max_batches(repo, stages))
        changed = cfg.parameters[c.PARAM_STAGE_MAX_BATCH].string_value != limits
        cfg.parameters[c.PARAM_STAGE_MAX_BATCH].string_value = limits
        changed |= _declare_truncation(cfg, repo, stages)
        changed |= _inline_if_wanted(cfg, repo, router, stages, stage)
        if changed:
            write_text(cfg_path, render_config(cfg))
        if stage in c.parse_names(parameter(cfg, c.PARAM_INLINE_STAGE)):
            copy_inline_stage(repo, router, stage)
        refreshed.append(router)
    return refreshed


def _data_spec(repo: Path) -> str:
    """The repository's data.json (``elang.data.spec``), compact, or "" when it has none."""
    path = Path(repo) / "data.json"
    try:
        return json.dumps(json.loads(path.read_text()), separators=(",", ":")) if path.is_file() else ""
    except ValueError:
        return ""


def write_router(repo: Path, spec: RouterSpec, labels: tuple[str, ...] = (), staging: Path | None = None) -> None:
    """Write a router of any task (Python backend, BLS over the stages): the one router writer.

    The task (``spec.task``, ``elang.tasks``) gives the router's outputs and checks the policy.
    The stages ``spec.inline`` names that a router can run in-process (python-ort classifier,
    generating stage, segment) are copied into the router's folder (no BLS hop for them). The stages' ``max_batch_size`` found in ``repo`` is recorded as ``stage_max_batch``,
    so the router never sends a stage more rows than it accepts. ``staging``: write into that
    staged repository (with the stages the caller writes there), else into a staged copy of ``repo``.
    """

    repo = Path(repo)
    task = get_task(spec.task)
    inline = inline_plan([p for p in (staging, repo) if p is not None], spec.name, spec.stages, task.name, spec.inline)
    batches = stage_max_batches(staging or repo, spec.stages)
    params = {
        c.PARAM_TASK: task.name,
        c.PARAM_STAGES: ",".join(spec.stages),
        c.PARAM_POLICY: spec.policy,
        c.PARAM_THRESHOLD: spec.threshold,
        c.PARAM_TEMPERATURE: spec.temperature,
        c.PARAM_STAGE_TIMEOUT_S: spec.stage_timeout_s,
        c.PARAM_STAGE_MAX_BATCH: format_stage_map(batches),
        c.PARAM_STAGE_INFLIGHT: spec.stage_inflight,
        c.PARAM_STAGE_QUEUE_ROWS: spec.stage_queue_rows,
        c.PARAM_MAX_TEXT_BYTES: spec.max_text_bytes,
        c.PARAM_CALIBRATION_VERSION: spec.calibration_version,
        "energy_buckets": ",".join(f"{b:g}" for b in DEFAULT_ENERGY_BUCKETS),
        "window_rows": 1000,
        c.PARAM_INLINE_STAGE: ",".join(stage for _, stage, _ in inline),
        c.PARAM_INLINE_MODE: spec.inline,
    }
    # What only some tasks' routers carry (labels, a token cap, exit layers): written when given.
    optional = {
        c.PARAM_NUM_LABELS: len(labels) or "",
        c.PARAM_LABELS: json.dumps(list(labels)) if labels else "",
        c.PARAM_MAX_NEW_TOKENS: spec.max_new_tokens or "",
        c.PARAM_EXIT_LAYERS: ",".join(str(layer) for layer in spec.exit_layers),
        c.PARAM_DATA_SPEC: _data_spec(repo),
    }
    params.update({k: v for k, v in optional.items() if v != ""})
    params.update(spec.extra_parameters)
    try:  # refuse settings the router would refuse at load time (it looks at the stages' outputs too)
        found = {c.PARAM_STAGE_MARGINS: "1" if stages_declare(staging or repo, spec.stages, c.TOKEN_MARGIN) else "0"}
        RouterSettings.from_parameters({**{k: str(v) for k, v in params.items()}, **found})
    except ValueError as exc:
        raise RepositoryError(str(exc)) from None
    cfg = mc.ModelConfig(name=spec.name, backend="python")
    set_batching(cfg, spec.max_batch_size, spec.max_queue_delay_us, spec.max_queue_size, spec.queue_timeout_s)
    add_tensor(cfg.input, c.text_input())
    for out in task.router_outputs(len(labels)):
        add_tensor(cfg.output, out)
    _declare_truncation(cfg, staging or repo, spec.stages)  # when every stage reports it (python-ort classifiers)
    set_instances(cfg, spec.instances)
    set_parameters(cfg, params)

    def write(into: Path) -> None:
        if (into / spec.name).exists():
            shutil.rmtree(into / spec.name)  # a fresh folder: no stale inline copy
        version = write_model(into, cfg, "elang.triton.router_model.TritonPythonModel")
        for home, stage, stage_cfg in inline:
            fill_inline_copy(home, stage, stage_cfg, version / stage)

    if staging is not None:
        write(Path(staging))
        return
    with staged_repository(repo) as into:
        write(into)


@dataclass
class ServingKnobs:
    """Serving settings ``tune_repository`` can change in place (None: leave as is)."""

    ort_spinning: bool | None = None  # ONNX Runtime thread spinning of every Python-backend session
    inline: bool | None = None  # routers run their task's default stages in-process (or none: BLS)
    # routers' stages on other servers, "STAGE=grpc://HOST:PORT[/MODEL],...": each router takes
    # the entries of its own stages (one with none of them is left alone); "" removes them all
    remote_stages: str | None = None
    router_instances: int | None = None
    queue_delay_us: int | None = None  # dynamic batching delay of every model that batches
    metrics_interval_s: float | None = None  # how long routers gather metric updates
    max_queue_size: int | None = None  # queue bound of the models in queue_scope (0: unbounded)
    queue_timeout_s: float | None = None  # queue timeout of the models in queue_scope (0: none)
    queue_scope: str = "all"  # which models the two above change: all, routers or stages
    stage_timeout_s: float | None = None  # routers' deadline per stage
    stage_inflight: int | None = None  # routers' calls in flight per later stage
    stage_queue_rows: int | None = None  # rows allowed to wait in a router per stage
    fault_injection: bool | None = None  # python-ort stages honour elang_fault_sleep_s
    # Per stage, each "N" (every stage it applies to) or "STAGE=N,..." (those stages only):
    streams: str | None = None  # OpenVINO streams of python-ort stages on engine openvino
    threads: str | None = None  # intra-op threads of python-ort stages (0: every core)
    instances: str | None = None  # model instances of stages (not routers: router_instances)

    def given(self) -> bool:
        return any(v is not None for k, v in vars(self).items() if k != "queue_scope")


def tune_repository(repo: Path, knobs: ServingKnobs | None = None, **kwargs: object) -> list[str]:
    """Change serving knobs of an existing repository in place (``ServingKnobs`` fields, or the
    same names as keywords); returns the models whose config changed. Each config is rewritten
    atomically, so a server that reloads meanwhile reads the old or the new one."""
    k = knobs or ServingKnobs(**kwargs)  # type: ignore[arg-type]
    repo = Path(repo)
    names = model_names(repo)
    if not names:
        raise RepositoryError(f"{repo} holds no models")
    _check_knobs(k)
    streams = parse_stage_counts("streams", k.streams, names, minimum=1)
    threads = parse_stage_counts("threads", k.threads, names, minimum=0)
    instances = parse_stage_counts("instances", k.instances, names, minimum=1)
    if instances and any(c.is_router(n) for n in instances):
        raise RepositoryError("instances: routers take --router-instances")
    changes: list[str] = []
    for name in names:
        path = repo / name / "config.pbtxt"
        cfg = parse_config(path.read_text())
        before = render_config(cfg)
        ort_stage = _python_ort_stage(repo, name) is not None
        if k.ort_spinning is not None and (c.PARAM_ORT_SPINNING in cfg.parameters or ort_stage):
            cfg.parameters[c.PARAM_ORT_SPINNING].string_value = str(int(k.ort_spinning))
        if k.fault_injection is not None and ort_stage:
            cfg.parameters[c.PARAM_FAULT_INJECTION].string_value = str(int(k.fault_injection))
        if streams is not None and ort_stage and (name in streams or "*" in streams):
            if parameter(cfg, c.PARAM_ENGINE) != "openvino":
                if name in streams:
                    raise RepositoryError(f"{name}: streams need engine openvino; {name} runs on ONNX Runtime")
            else:
                cfg.parameters[c.PARAM_STREAMS].string_value = str(streams.get(name, streams.get("*")))
        if threads is not None and (name in threads or "*" in threads):
            if not ort_stage and name in threads:
                raise RepositoryError(f"{name}: threads are set per python-ort stage (elang export --threads)")
            if ort_stage:
                cfg.parameters[c.PARAM_INTRA_OP_THREADS].string_value = str(threads.get(name, threads.get("*")))
        if ort_stage and (streams is not None or threads is not None):
            _check_stage_streams(name, cfg)
        if instances is not None and not c.is_router(name) and (name in instances or "*" in instances):
            count = instances.get(name, instances.get("*"))
            kind = cfg.instance_group[0].kind if cfg.instance_group else mc.ModelInstanceGroup.KIND_CPU
            del cfg.instance_group[:]
            group = cfg.instance_group.add()
            group.count, group.kind = count, kind
        if cfg.HasField("dynamic_batching"):
            if k.queue_delay_us is not None:
                cfg.dynamic_batching.max_queue_delay_microseconds = int(k.queue_delay_us)
            in_scope = k.queue_scope == "all" or (k.queue_scope == "routers") == c.is_router(name)
            if in_scope and (k.max_queue_size is not None or k.queue_timeout_s is not None):
                policy = cfg.dynamic_batching.default_queue_policy
                set_queue_policy(
                    cfg,
                    policy.max_queue_size if k.max_queue_size is None else k.max_queue_size,
                    policy.default_timeout_microseconds / 1e6 if k.queue_timeout_s is None else k.queue_timeout_s,
                )
        if c.is_router(name):
            _tune_router(repo, name, cfg, k)
        if render_config(cfg) != before:
            write_text(path, render_config(cfg))
            changes.append(name)
    for name in names:  # inline copies follow their stage (spinning) and the router's setting
        if not c.is_router(name):
            continue
        cfg = read_config(config_path(repo, name))
        inline = c.parse_names(parameter(cfg, c.PARAM_INLINE_STAGE))
        for stage in _router_stages(cfg):
            if stage in inline:
                copy_inline_stage(repo, name, stage)
            else:
                shutil.rmtree(repo / name / "1" / stage, ignore_errors=True)
    return changes


def parse_stage_counts(option: str, text: str | None, names: Sequence[str], minimum: int) -> dict[str, int] | None:
    """A per-stage knob of ``elang tune`` (``--streams``, ``--threads``, ``--instances``): "N" for
    every stage it applies to ({"*": N}) or "STAGE=N,..." for the named ones; None when not given."""
    if text is None:
        return None
    text = str(text).strip()
    try:
        entries = {"*": text} if "=" not in text else dict(e.split("=", 1) for e in text.split(",") if e.strip())
    except ValueError:
        raise RepositoryError(f"{option} {text!r}: expected N or STAGE=N,...") from None
    out = {}
    for stage, value in entries.items():
        stage = stage.strip()
        if stage != "*" and stage not in names:
            raise RepositoryError(f"{option}: no model {stage!r} in the repository (models: {', '.join(names)})")
        try:
            out[stage] = int(str(value).strip())
        except ValueError:
            raise RepositoryError(f"{option} {text!r}: {value.strip()!r} is not an integer") from None
        if out[stage] < minimum:
            raise RepositoryError(f"{option} {text!r}: {stage if stage != '*' else 'the count'} must be >= {minimum}")
    return out


def _check_stage_streams(name: str, cfg: mc.ModelConfig) -> None:
    """A stage's streams and threads as tuned must compile (each stream needs a thread)."""
    from elang.runtimes.openvino import check_streams

    try:
        streams = int(parameter(cfg, c.PARAM_STREAMS) or 1)
        check_streams(streams, int(parameter(cfg, c.PARAM_INTRA_OP_THREADS) or 0))
    except ValueError as exc:
        raise RepositoryError(f"{name}: {exc}") from None


def _check_knobs(k: ServingKnobs) -> None:
    for key in ("router_instances", "stage_inflight", "stage_queue_rows"):
        value = getattr(k, key)
        if value is not None and value < 1:
            raise RepositoryError(f"{key.replace('_', ' ')} must be >= 1, got {value}")
    for key in ("metrics_interval_s", "queue_timeout_s", "queue_delay_us", "max_queue_size"):
        value = getattr(k, key)
        if value is not None and not value >= 0:
            raise RepositoryError(f"{key.replace('_', ' ')} must be >= 0, got {value}")
    if k.queue_scope not in QUEUE_SCOPES:
        raise RepositoryError(f"queue scope must be one of {', '.join(QUEUE_SCOPES)}, got {k.queue_scope!r}")
    if k.stage_timeout_s is not None and not k.stage_timeout_s > 0:
        raise RepositoryError(f"stage timeout must be > 0 s, got {k.stage_timeout_s}")


def _tune_router(repo: Path, name: str, cfg: mc.ModelConfig, k: ServingKnobs) -> None:
    if k.router_instances is not None:
        del cfg.instance_group[:]
        set_instances(cfg, k.router_instances)
    values = {
        "metrics_interval_s": (k.metrics_interval_s, float),
        c.PARAM_STAGE_TIMEOUT_S: (k.stage_timeout_s, float),
        c.PARAM_STAGE_INFLIGHT: (k.stage_inflight, int),
        c.PARAM_STAGE_QUEUE_ROWS: (k.stage_queue_rows, int),
    }
    for key, (value, kind) in values.items():
        if value is not None:
            cfg.parameters[key].string_value = repr(kind(value))
    if k.remote_stages is not None:
        from elang.runtimes.remote import parse_remote_stages

        try:
            remotes = parse_remote_stages(k.remote_stages)
        except ValueError as exc:
            raise RepositoryError(str(exc)) from None
        stages = _router_stages(cfg)
        mine = {n: r for n, r in remotes.items() if n in stages}  # each router: its own stages
        if mine or not remotes:
            inline = c.parse_names(parameter(cfg, c.PARAM_INLINE_STAGE))
            if set(mine) & set(inline):  # a remote stage is no longer run in the router
                cfg.parameters[c.PARAM_INLINE_STAGE].string_value = ",".join(s for s in inline if s not in mine)
            cfg.parameters[c.PARAM_REMOTE_STAGES].string_value = ",".join(f"{n}={r.where}" for n, r in mine.items())
    if k.inline is not None:
        stages = _router_stages(cfg)
        task = task_from_parameters(parameters(cfg)).name
        plan = inline_plan([repo], name, stages, task, "default" if k.inline else "none")
        if k.inline and stages[0] not in [stage for _, stage, _ in plan]:
            raise RepositoryError(
                f"{name}: first stage {stages[0]} is neither a python-ort, a generating nor a segment stage; "
                "it cannot run inline"
            )
        cfg.parameters[c.PARAM_INLINE_STAGE].string_value = ",".join(stage for _, stage, _ in plan)
        cfg.parameters[c.PARAM_INLINE_MODE].string_value = "default" if k.inline else "none"


def write_repository(
    repo: Path, swift: ClassifierSpec, super_: ClassifierSpec, router: RouterSpec | None = None
) -> Path:
    """Write a complete repository: `swift`, `super` and the `elang` router."""
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    s_info = write_classifier(repo, c.SWIFT_MODEL, swift)
    p_info = write_classifier(repo, c.SUPER_MODEL, super_)
    if s_info.num_labels != p_info.num_labels or s_info.labels != p_info.labels:
        raise RepositoryError(
            f"swift labels {list(s_info.labels)} differ from super labels {list(p_info.labels)}; "
            "both models must predict the same label set in the same order"
        )
    write_router(repo, router or RouterSpec(), s_info.labels)
    log.info("wrote model repository %s", repo)
    return repo


def model_names(repo: Path) -> list[str]:
    """Names of the models in a repository (folders holding a config.pbtxt)."""
    return sorted(p.parent.name for p in Path(repo).glob("*/config.pbtxt"))
