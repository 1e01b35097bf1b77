"""Write a multi-exit model into a Triton repository: one stage per segment, and a router.

``write_exit_model`` takes the segment folders that ``elang export --segments`` produced
(``seg0``, ``seg1``, ...) and writes, next to whatever the repository already serves:

* ``<prefix><layer>`` per segment (e.g. ``exit2`` ... ``exit12``): a Python-backend model
  (``elang.triton.segment_model``) running the segment on ONNX Runtime;
* ``<router>`` (default ``elang_exits``): the `elang` router (``elang.triton.router_model``)
  over those stages, with ``exit_layers`` set, so each stage hands its escalated rows' hidden
  state to the next, the exit policy decides per row after every segment, and the answer
  carries EXIT and SCORE as well as the pair's outputs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from elang import contract as c
from elang.core.atomic import staged_repository
from elang.repository.writer import (
    RepositoryError,
    RouterSpec,
    add_tensor,
    set_batching,
    set_instances,
    set_parameters,
    write_model,
    write_router,
)
from elang.runtimes.segments import SegmentInfo, segment_folders

EXITS_ROUTER = "elang_exits"


@dataclass
class ExitModelSpec:
    segments: Path  # the folder holding seg0, seg1, ...
    prefix: str = "exit"
    router: str = EXITS_ROUTER
    policy: str = "softmax"
    threshold: float = 0.9
    max_length: int = c.DEFAULT_MAX_LENGTH
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    intra_op_threads: int = 0
    gpu: bool = False
    stage_timeout_s: float = c.DEFAULT_STAGE_TIMEOUT_S
    calibration_version: str = "uncalibrated"
    fault_injection: bool = False
    temperatures: tuple[float, ...] | None = None  # None: the ones fitted in training
    # Where the segments run: "default"/"all" in the router's process (hidden states never leave
    # it), "none" each over BLS in its own stub (elang.repository.writer.INLINE_MODES).
    inline: str = "default"


def stage_names(spec: ExitModelSpec) -> list[str]:
    return [f"{spec.prefix}{SegmentInfo.read(f).end}" for f in segment_folders(spec.segments)]


def write_exit_model(repo: Path, spec: ExitModelSpec) -> list[str]:
    """Write the segment stages and their router into ``repo``; returns the model names written."""

    if not c.is_router(spec.router):
        raise RepositoryError(
            f"a router's name must be {c.ROUTER_MODEL} or start with {c.ROUTER_MODEL}_, got {spec.router!r}"
        )
    folders = segment_folders(spec.segments)
    infos = [SegmentInfo.read(f) for f in folders]
    if [i.index for i in infos] != list(range(len(infos))) or infos[-1].segments != len(infos):
        raise RepositoryError(
            f"{spec.segments}: segments {[i.index for i in infos]} of {infos[-1].segments} are incomplete"
        )
    if len(infos) < 2:
        raise RepositoryError(f"{spec.segments}: a multi-exit router needs at least two segments")
    names = [f"{spec.prefix}{i.end}" for i in infos]
    labels_path = folders[0] / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    label_names = [labels.get(str(i), str(i)) for i in range(infos[0].num_labels)]
    temps = spec.temperatures or tuple(i.temperature for i in infos)
    router = RouterSpec(
        task=c.TASK_EXITS,
        stages=tuple(names),
        exit_layers=tuple(i.end for i in infos),
        policy=spec.policy,
        threshold=",".join([repr(float(spec.threshold))] * (len(infos) - 1)),
        temperature=",".join(repr(float(t)) for t in temps),
        stage_timeout_s=spec.stage_timeout_s,
        calibration_version=spec.calibration_version,
        name=spec.router,
        max_batch_size=spec.max_batch_size,
        max_queue_delay_us=spec.max_queue_delay_us,
        inline=spec.inline,  # default: every segment in the router's process
    )
    with staged_repository(Path(repo)) as staging:
        for folder, info, name in zip(folders, infos, names, strict=True):
            _write_segment(staging, name, folder, info, spec)
        write_router(repo, router, tuple(label_names), staging=staging)
    return [*names, spec.router]


def _write_segment(repo: Path, name: str, folder: Path, info: SegmentInfo, spec: ExitModelSpec) -> None:
    cfg = mc.ModelConfig(name=name, backend="python")
    set_batching(cfg, spec.max_batch_size, spec.max_queue_delay_us)
    for t in c.segment_inputs(info.first, info.hidden_size):
        add_tensor(cfg.input, t)
    for t in c.segment_outputs(info.first, info.last, info.num_labels, info.hidden_size):
        add_tensor(cfg.output, t)
    set_instances(cfg, 1, spec.gpu)
    set_parameters(
        cfg,
        {
            c.PARAM_MAX_LENGTH: spec.max_length,
            c.PARAM_MAX_TEXT_BYTES: c.DEFAULT_MAX_TEXT_BYTES,
            c.PARAM_INTRA_OP_THREADS: spec.intra_op_threads,
            "providers": "CUDAExecutionProvider,CPUExecutionProvider" if spec.gpu else "CPUExecutionProvider",
            c.PARAM_FAULT_INJECTION: int(spec.fault_injection),
        },
    )
    version = write_model(repo, cfg, "elang.triton.segment_model.TritonPythonModel")
    for item in folder.iterdir():
        if item.is_file():
            shutil.copy2(item, version / item.name)
