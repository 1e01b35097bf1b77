"""The router's settings and answers, free of Triton.

``RouterSettings`` reads the router's config parameters (and gives the per-stage limits
of the execution model, ``elang.core.execution``). What differs between tasks (how a stage is
called, what its answer means, the router's outputs) is the task's (``settings.spec``, from
``elang.tasks``); the `elang` Triton adapter and the tests use both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.execution import StageLimits
from elang.core.routing import (
    POLICY_NAMES,
    SEQUENCE_POLICIES,
    get_policy,
    parse_thresholds,
)
from elang.core.texts import InputError
from elang.tasks import Task, get_task, resolve_task_name, task_from_parameters


@dataclass(frozen=True)
class RouterSettings:
    """What the router reads from its config.pbtxt ``parameters``."""

    stages: tuple[str, ...] = c.STAGES
    policy: str = "energy"
    thresholds: tuple[float, ...] = (0.0,)
    temperature: float = 1.0  # the first stage's (ENERGY is computed at it)
    stage_temperatures: tuple[float, ...] = ()  # one per stage (multi-exit: Right Tool's per-exit T); () = temperature
    exit_layers: tuple[int, ...] = ()  # multi-exit: each stage's exit layer; () = a cascade of whole models
    task: str = c.TASK_CLASSIFY  # or c.TASK_GENERATE: seq2seq stages, a policy over token energies
    max_new_tokens: int = 0  # generate: the cap on new tokens per row (and the width of TOKEN_ENERGY)
    stage_timeout_s: float = c.DEFAULT_STAGE_TIMEOUT_S
    max_text_bytes: int = c.DEFAULT_MAX_TEXT_BYTES
    calibration_version: str = "uncalibrated"
    inline_stages: tuple[str, ...] = ()  # stages run in the router's process (copies in its folder)
    report_truncation: bool = False  # ask the stages for TRUNCATED and answer it (c.PARAM_REPORT_TRUNCATION)
    # generate: whether every stage declares TOKEN_MARGIN (c.PARAM_STAGE_MARGINS, found by the
    # router at load); None where nobody looked (settings read from a config offline)
    stage_margins: bool | None = None
    stage_max_batch: Mapping[str, int] = field(default_factory=dict)  # missing stage: 64
    stage_inflight: Mapping[str, int] = field(default_factory=dict)  # missing: DEFAULT_STAGE_INFLIGHT
    stage_queue_rows: Mapping[str, int] = field(default_factory=dict)  # missing: DEFAULT_STAGE_QUEUE_ROWS
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES and self.policy not in SEQUENCE_POLICIES:
            get_policy(self.policy)  # the error lists the known policies (quantile:Q passes)
        object.__setattr__(self, "task", resolve_task_name(self.task, bool(self.exit_layers)))
        get_task(self.task)  # an unknown task names the known ones
        if len(self.stages) < 2:
            raise ValueError(f"the router needs at least two stages, got {list(self.stages)}")
        if len(self.thresholds) != len(self.stages) - 1:
            raise ValueError(
                f"{len(self.stages)} stages need {len(self.stages) - 1} thresholds, got {list(self.thresholds)}"
            )
        for t in (self.temperature, *self.stage_temperatures):
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"temperature must be > 0, got {t}")
        if self.stage_temperatures and len(self.stage_temperatures) != len(self.stages):
            raise ValueError(
                f"temperature: give one, or one per stage ({len(self.stages)}), got {list(self.stage_temperatures)}"
            )
        unknown = [s for s in self.inline_stages if s not in self.stages]
        if unknown:
            raise ValueError(
                f"inline_stage names {unknown}, which are not stages of this router ({', '.join(self.stages)})"
            )
        if not self.stage_timeout_s > 0:
            raise ValueError(f"stage_timeout_s must be > 0, got {self.stage_timeout_s}")
        self.spec.validate(self)
        self.stage_limits()  # refuse limits below 1 now, not at the first request

    @property
    def spec(self) -> Task:
        """The task object this router serves (``elang.tasks``)."""
        return get_task(self.task)

    def stage_limits(self) -> list[StageLimits]:
        """How the execution model may call each stage, in cascade order."""
        return [
            StageLimits(
                name,
                max_batch=self.stage_max_batch.get(name, 64),
                max_inflight=self.stage_inflight.get(name, c.DEFAULT_STAGE_INFLIGHT),
                timeout_s=self.stage_timeout_s,
                max_queued_rows=self.stage_queue_rows.get(name, c.DEFAULT_STAGE_QUEUE_ROWS),
            )
            for name in self.stages
        ]

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> RouterSettings:
        """Build settings from config parameters; a bad value names its key."""
        stages = c.parse_stages(params.get(c.PARAM_STAGES))
        if len(stages) < 2:
            raise ValueError(f"router config parameters: the router needs at least two stages, got {list(stages)}")
        try:
            task = task_from_parameters(params)
            return cls(
                stages=stages,
                policy=params.get(c.PARAM_POLICY) or task.default_policy,
                thresholds=tuple(parse_thresholds(params.get(c.PARAM_THRESHOLD, "0"), len(stages) - 1)),
                temperature=_temperatures(params)[0],
                stage_temperatures=_temperatures(params)[1],
                exit_layers=_exit_layers(params),
                task=task.name,
                max_new_tokens=int(params.get(c.PARAM_MAX_NEW_TOKENS, "0") or 0),
                stage_timeout_s=float(params.get(c.PARAM_STAGE_TIMEOUT_S, c.DEFAULT_STAGE_TIMEOUT_S)),
                max_text_bytes=int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES)),
                calibration_version=params.get(c.PARAM_CALIBRATION_VERSION, "uncalibrated"),
                inline_stages=c.parse_names(params.get(c.PARAM_INLINE_STAGE, "")),
                report_truncation=params.get(c.PARAM_REPORT_TRUNCATION, "0") == "1",
                stage_margins=None if c.PARAM_STAGE_MARGINS not in params else params[c.PARAM_STAGE_MARGINS] == "1",
                stage_max_batch=parse_stage_map(params, c.PARAM_STAGE_MAX_BATCH, stages),
                stage_inflight=parse_stage_map(params, c.PARAM_STAGE_INFLIGHT, stages),
                stage_queue_rows=parse_stage_map(params, c.PARAM_STAGE_QUEUE_ROWS, stages),
                extra={k: v for k, v in params.items() if k not in _KNOWN},
            )
        except ValueError as exc:
            raise ValueError(f"router config parameters: {exc}") from None

    @property
    def temperatures(self) -> tuple[float, ...]:
        """One temperature per stage."""
        return self.stage_temperatures or (self.temperature,) * len(self.stages)

    def describe(self) -> str:
        thr = ",".join(str(t) for t in self.thresholds)
        where = f" inline={','.join(self.inline_stages)}" if self.inline_stages else ""
        return (
            f"stages={'->'.join(self.stages)}{where} policy={self.policy} threshold={thr} "
            f"temperature={self.temperature} calibration={self.calibration_version}"
        )

    def request_thresholds(self, params: Mapping[str, Any]) -> list[float]:
        """This request's thresholds: the config's, or the ``elang_threshold`` override.

        How the value is read is the task's (a multi-exit router takes one number for every exit)."""
        if c.THRESHOLD_PARAM not in params:
            return list(self.thresholds)
        try:
            return self.spec.request_thresholds(self, params[c.THRESHOLD_PARAM])
        except ValueError as exc:
            raise InputError(f"request parameter {c.THRESHOLD_PARAM}: {exc}") from None


_KNOWN = {
    c.PARAM_TASK,
    c.PARAM_REPORT_TRUNCATION,
    c.PARAM_STAGE_MARGINS,
    c.PARAM_MAX_NEW_TOKENS,
    c.PARAM_EXIT_LAYERS,
    c.PARAM_STAGES,
    c.PARAM_POLICY,
    c.PARAM_THRESHOLD,
    c.PARAM_TEMPERATURE,
    c.PARAM_STAGE_TIMEOUT_S,
    c.PARAM_MAX_TEXT_BYTES,
    c.PARAM_CALIBRATION_VERSION,
    c.PARAM_INLINE_STAGE,
    c.PARAM_STAGE_MAX_BATCH,
    c.PARAM_STAGE_INFLIGHT,
    c.PARAM_STAGE_QUEUE_ROWS,
}


def parse_stage_map(params: Mapping[str, str], key: str, stages: tuple[str, ...]) -> dict[str, int]:
    """``key``'s value as {stage: int}: one number for every stage, or ``"name=N,name=N"``."""
    raw = params.get(key, "").strip()
    if not raw:
        return {}
    out: dict[str, int] = {}
    try:
        if "=" not in raw:
            return dict.fromkeys(stages, int(raw))
        for item in raw.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in stages:
                raise ValueError(f"{key}: {name!r} is not one of the stages {list(stages)}")
            out[name] = int(value)
    except ValueError as exc:
        if key in str(exc):
            raise
        raise ValueError(f"{key} must be a number or name=number pairs, got {raw!r}") from None
    return out


def format_stage_map(values: Mapping[str, int]) -> str:
    """The inverse of :func:`parse_stage_map`."""
    return ",".join(f"{k}={v}" for k, v in values.items())


def _temperatures(params: Mapping[str, str]) -> tuple[float, tuple[float, ...]]:
    """(first stage's temperature, per-stage temperatures or ()) from "1.2" or "1.2,0.9,..."."""
    raw = params.get(c.PARAM_TEMPERATURE, "1.0")
    try:
        values = tuple(float(t) for t in raw.split(","))
    except ValueError:
        raise ValueError(f"temperature must be a number or one number per stage, got {raw!r}") from None
    return values[0], (values if len(values) > 1 else ())


def _exit_layers(params: Mapping[str, str]) -> tuple[int, ...]:
    raw = params.get(c.PARAM_EXIT_LAYERS, "").strip()
    try:
        return tuple(int(x) for x in raw.split(",")) if raw else ()
    except ValueError:
        raise ValueError(f"exit_layers must be comma-separated layer numbers, got {raw!r}") from None


class SlidingFraction:
    """Share of escalated rows among the last ``size`` answered rows (for the Super-fraction gauge)."""

    def __init__(self, size: int = 1000) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.buf = np.zeros(size, dtype=np.int8)
        self.size = size
        self.pos = 0
        self.filled = 0

    def add(self, escalated: np.ndarray) -> float:
        e = np.asarray(escalated, dtype=np.int8).ravel()[-self.size :]
        end = self.pos + len(e)
        if end <= self.size:
            self.buf[self.pos : end] = e
        else:
            cut = self.size - self.pos
            self.buf[self.pos :] = e[:cut]
            self.buf[: end - self.size] = e[cut:]
        self.pos = end % self.size
        self.filled = min(self.size, self.filled + len(e))
        return self.value

    @property
    def value(self) -> float:
        return float(self.buf.sum() / self.filled) if self.filled else 0.0


DEFAULT_ENERGY_BUCKETS = tuple(float(b) for b in range(-12, 3))
