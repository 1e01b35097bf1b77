"""The router's logic, free of Triton: settings from config parameters and batch routing.

``route_batch`` is called by the `elang` Triton model with a function that calls a
stage model over BLS; tests call it with plain Python functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elang import contract as c
from elang.inputs import InputError
from elang.routing import CascadeResult, StageError, energy, get_policy, parse_thresholds, run_cascade


@dataclass(frozen=True)
class RouterSettings:
    """What the router reads from its config.pbtxt ``parameters``."""

    stages: tuple[str, ...] = c.STAGES
    policy: str = "energy"
    thresholds: tuple[float, ...] = (0.0,)
    temperature: float = 1.0
    stage_timeout_s: float = c.DEFAULT_STAGE_TIMEOUT_S
    max_text_bytes: int = c.DEFAULT_MAX_TEXT_BYTES
    calibration_version: str = "uncalibrated"
    inline_stage: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_policy(self.policy)
        if len(self.stages) < 2:
            raise ValueError(f"the router needs at least two stages, got {list(self.stages)}")
        if len(self.thresholds) != len(self.stages) - 1:
            raise ValueError(
                f"{len(self.stages)} stages need {len(self.stages) - 1} thresholds, got {list(self.thresholds)}"
            )
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.inline_stage and self.inline_stage != self.stages[0]:
            raise ValueError(
                f"inline_stage must be the first stage ({self.stages[0]}) or empty, got {self.inline_stage!r}"
            )
        if not self.stage_timeout_s > 0:
            raise ValueError(f"stage_timeout_s must be > 0, got {self.stage_timeout_s}")

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> RouterSettings:
        """Build settings from config parameters; a bad value names its key."""
        stages = tuple(s.strip() for s in params.get(c.PARAM_STAGES, ",".join(c.STAGES)).split(",") if s.strip())
        if len(stages) < 2:
            raise ValueError(f"router config parameters: the router needs at least two stages, got {list(stages)}")
        try:
            return cls(
                stages=stages,
                policy=params.get(c.PARAM_POLICY, "energy"),
                thresholds=tuple(parse_thresholds(params.get(c.PARAM_THRESHOLD, "0"), len(stages) - 1)),
                temperature=float(params.get(c.PARAM_TEMPERATURE, "1.0")),
                stage_timeout_s=float(params.get(c.PARAM_STAGE_TIMEOUT_S, c.DEFAULT_STAGE_TIMEOUT_S)),
                max_text_bytes=int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES)),
                calibration_version=params.get(c.PARAM_CALIBRATION_VERSION, "uncalibrated"),
                inline_stage=params.get(c.PARAM_INLINE_STAGE, "").strip(),
                extra={k: v for k, v in params.items() if k not in _KNOWN},
            )
        except ValueError as exc:
            raise ValueError(f"router config parameters: {exc}") from None

    def describe(self) -> str:
        thr = ",".join(str(t) for t in self.thresholds)
        where = f" inline={self.inline_stage}" if self.inline_stage else ""
        return (
            f"stages={'->'.join(self.stages)}{where} policy={self.policy} threshold={thr} "
            f"temperature={self.temperature} calibration={self.calibration_version}"
        )

    def request_thresholds(self, params: Mapping[str, Any]) -> list[float]:
        """This request's thresholds: the config's, or the ``elang_threshold`` override."""
        if c.THRESHOLD_PARAM not in params:
            return list(self.thresholds)
        try:
            return parse_thresholds(params[c.THRESHOLD_PARAM], len(self.stages) - 1)
        except ValueError as exc:
            raise InputError(f"request parameter {c.THRESHOLD_PARAM}: {exc}") from None


_KNOWN = {
    c.PARAM_STAGES,
    c.PARAM_POLICY,
    c.PARAM_THRESHOLD,
    c.PARAM_TEMPERATURE,
    c.PARAM_STAGE_TIMEOUT_S,
    c.PARAM_MAX_TEXT_BYTES,
    c.PARAM_CALIBRATION_VERSION,
    c.PARAM_INLINE_STAGE,
}


@dataclass
class RoutedBatch:
    """The routed answer for a concatenated batch, or an error that applies to all of it."""

    result: CascadeResult | None
    energy: np.ndarray | None
    error: str | None = None

    def per_request(self, counts: list[int]) -> list[dict[str, np.ndarray] | str]:
        """Output tensors per request, or an error message for a request that cannot be answered."""
        out: list[dict[str, np.ndarray] | str] = []
        start = 0
        for n in counts:
            rows = slice(start, start + n)
            start += n
            if self.result is None:
                out.append(self.error or "routing failed")
                continue
            failed = [f for f in self.result.failures if np.any((f.rows >= rows.start) & (f.rows < rows.stop))]
            if failed:
                out.append("; ".join(f.message for f in failed))
                continue
            logits = self.result.logits[rows]
            out.append(
                {
                    c.LABEL: np.argmax(logits, axis=1).astype(np.int64).reshape(n, 1),
                    c.LOGITS: np.ascontiguousarray(logits, dtype=np.float32),
                    c.ENERGY: self.energy[rows].astype(np.float32).reshape(n, 1),
                    c.ROUTE: self.result.route[rows].astype(np.int32).reshape(n, 1),
                }
            )
        return out


def route_batch(
    texts: np.ndarray,
    counts: list[int],
    thresholds: list[list[float]],
    settings: RouterSettings,
    call_stage: Callable[[str, np.ndarray], np.ndarray],
) -> RoutedBatch:
    """Route the concatenated TEXT rows of several requests through the cascade.

    ``thresholds[r]`` are request r's thresholds (one per escalation step);
    ``call_stage(model_name, texts_subset)`` returns that model's logits.
    """
    per_row = np.repeat(np.asarray(thresholds, dtype=np.float64), counts, axis=0)  # [rows, steps]
    policy = get_policy(settings.policy)
    stages = [(lambda rows, m=m: call_stage(m, texts[rows])) for m in settings.stages]
    try:
        result = run_cascade(
            len(texts), stages, policy, [per_row[:, k] for k in range(per_row.shape[1])], settings.temperature
        )
    except StageError as exc:
        return RoutedBatch(None, None, f"{settings.stages[0]}: {exc}")
    for f in result.failures:
        f.message = f"{settings.stages[f.stage]} ({f.message})"
    return RoutedBatch(result, energy(result.first_logits, settings.temperature))


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
