"""Routing maths: energy, confidence scores, policies and the cascade.

numpy only: imported by the Triton router, the client, the calibration tools
and the tests alike. Conventions:

* ``logits`` has shape ``[rows, num_labels]``; every score is per row.
* A policy turns logits into a score and escalates a row to the next stage when
  the score is on the "unsure" side of the threshold: above it for energy and
  entropy, below it for the maximum softmax probability.
* One cascade step is :meth:`Policy.unsure` on a stage's logits; the router's
  execution model (``elang.execution``) applies it after every stage, so a two-stage
  Swift/Super pair and a longer cascade share one code path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _as_logits(logits: np.ndarray) -> np.ndarray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"logits must have shape [rows, labels], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("logits must have at least one label column")
    return arr


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable log(sum(exp(x))) along ``axis``."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """E-LANG energy ``E(x) = -T * logsumexp(logits / T)`` per row (float64)."""
    t = _check_temperature(temperature)
    return -t * logsumexp(_as_logits(logits) / t)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / T`` (float64)."""
    t = _check_temperature(temperature)
    z = _as_logits(logits) / t
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def max_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Maximum class probability per row."""
    return np.max(softmax(logits, temperature), axis=-1)


def entropy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Shannon entropy (nats) of the softmax of ``logits / T`` per row."""
    t = _check_temperature(temperature)
    z = _as_logits(logits) / t
    logp = z - logsumexp(z)[:, None]
    p = np.exp(logp)
    return -np.sum(np.where(p > 0, p * logp, 0.0), axis=-1)


@dataclass(frozen=True)
class Policy:
    """A routing criterion: a per-row score and the side of the threshold that escalates."""

    name: str
    score_fn: Callable[[np.ndarray, float], np.ndarray]
    escalate_above: bool  # True: escalate when score > threshold; False: when score < threshold
    description: str

    def score(self, logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        return self.score_fn(logits, temperature)

    def escalate(self, scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
        """Boolean mask of rows to send to the next stage. NaN scores always escalate."""
        s = np.asarray(scores, dtype=np.float64)
        thr = np.asarray(threshold, dtype=np.float64)
        unsure = s > thr if self.escalate_above else s < thr
        return unsure | np.isnan(s)

    def unsure(self, logits: np.ndarray, threshold: float | np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Rows of ``logits`` that this policy sends to the next stage (one cascade step)."""
        return self.escalate(self.score(logits, temperature), threshold)


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("energy", energy, True, "escalate when -T*logsumexp(logits/T) > threshold"),
        Policy("softmax", max_softmax, False, "escalate when max softmax probability < threshold"),
        Policy("entropy", entropy, True, "escalate when softmax entropy (nats) > threshold"),
    )
}


def get_policy(name: str) -> Policy:
    """Look a policy up by name, with an error that lists the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise ValueError(f"unknown routing policy {name!r}; known policies: {known}") from None


def parse_threshold(value: object) -> float:
    """Parse a threshold given as a number or a string ("0.5", "inf", "-inf").

    Booleans, NaN and anything that is not a number are refused with a ValueError
    that names the value.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"threshold must be a number or 'inf'/'-inf', got {value!r}")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ValueError(f"threshold must be a number or 'inf'/'-inf', got {value!r}") from None
    else:
        raise ValueError(f"threshold must be a number or 'inf'/'-inf', got {type(value).__name__}")
    if math.isnan(out):
        raise ValueError("threshold must not be NaN")
    return out


def parse_thresholds(value: object, count: int) -> list[float]:
    """Parse ``count`` thresholds: one number, or a comma-separated string of ``count`` numbers."""
    if isinstance(value, str) and "," in value:
        parts: list[object] = [p for p in value.split(",")]
    else:
        parts = [value]
    if len(parts) != count:
        raise ValueError(f"expected {count} threshold(s), one per escalation step, got {len(parts)}: {value!r}")
    return [parse_threshold(p) for p in parts]


def threshold_for_fraction(scores: np.ndarray, fraction: float, policy: Policy) -> float:
    """The threshold that escalates ``round(fraction * n)`` of ``scores`` (RouteLLM-style).

    Placed halfway between the last escalated and the first kept score, so the share
    is exact on these scores when they have no ties at the cut.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("need at least one score to place a threshold")
    # Order from most to least unsure.
    order = np.sort(s)[::-1] if policy.escalate_above else np.sort(s)
    k = int(round(fraction * s.size))
    if k == 0:
        return float(order[0])
    if k == s.size:
        return float("-inf") if policy.escalate_above else float("inf")
    return float((order[k - 1] + order[k]) / 2)
