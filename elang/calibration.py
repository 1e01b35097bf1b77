"""Calibration maths: temperature scaling, ECE, AUROC, the routing trade-off and threshold choice.

numpy only. Inputs are per-example arrays from a validation split: Swift logits, Super
logits and true labels. A policy's score orders the examples from most to least unsure;
escalating the k most unsure gives one point of the trade-off curve:

    accuracy(k) = (sum of Super's correctness over the k escalated
                   + sum of Swift's correctness over the rest) / n

Thresholds are chosen on that curve for a target (accuracy, accuracy drop, Super share or
compute budget). With ``confidence`` set, accuracy targets are met by a lower bootstrap bound
instead of the point estimate, so they hold on unseen data with that probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from elang.routing import Policy, logsumexp

# ---------------------------------------------------------------- temperature scaling


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return float(np.mean(logsumexp(z) - z[np.arange(len(z)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T > 0 that minimises validation NLL (golden-section search on log T; NLL is unimodal in T)."""
    if len(logits) == 0:
        raise ValueError("temperature fitting needs at least one example")
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))


def ece(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bins: int = 15) -> float:
    """Expected calibration error of the max-probability confidence (equal-width bins)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - logsumexp(z)[:, None])
    conf, pred = p.max(1), p.argmax(1)
    correct = pred == labels
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo_, hi_ in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo_) & (conf <= hi_)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


# ---------------------------------------------------------------- ranking quality


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (rank statistic, ties averaged)."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def unsureness(scores: np.ndarray, policy: Policy) -> np.ndarray:
    """Scores oriented so that larger means more unsure (escalated first)."""
    s = np.asarray(scores, dtype=np.float64)
    return s if policy.escalate_above else -s


# ---------------------------------------------------------------- the trade-off curve


@dataclass
class Curve:
    """Accuracy when the k most unsure examples go to Super, for k = 0..n."""

    order: np.ndarray  # example indices, most unsure first
    sorted_scores: np.ndarray  # policy scores in that order
    accuracy: np.ndarray  # [n + 1]
    n: int

    @property
    def fractions(self) -> np.ndarray:
        return np.arange(self.n + 1) / self.n

    def threshold_for_k(self, k: int, policy: Policy) -> float:
        """A threshold that escalates exactly the first k examples of ``order`` (no ties at the cut)."""
        s = self.sorted_scores
        if k <= 0:
            return float(s[0])  # the most unsure score: nothing lies strictly beyond it
        if k >= self.n:
            return -math.inf if policy.escalate_above else math.inf
        return float((s[k - 1] + s[k]) / 2)

    def k_for_threshold(self, threshold: float, policy: Policy) -> int:
        return int(policy.escalate(self.sorted_scores, threshold).sum())


def routing_curve(scores: np.ndarray, swift_correct: np.ndarray, super_correct: np.ndarray, policy: Policy) -> Curve:
    u = unsureness(scores, policy)
    order = np.argsort(-u, kind="mergesort")
    cs = np.asarray(super_correct, dtype=np.float64)[order]
    cw = np.asarray(swift_correct, dtype=np.float64)[order]
    n = len(order)
    acc = (np.concatenate([[0.0], np.cumsum(cs)]) + np.concatenate([np.cumsum(cw[::-1])[::-1], [0.0]])) / n
    return Curve(order, np.asarray(scores, dtype=np.float64)[order], acc, n)


def bootstrap_lower_bound(
    curve: Curve,
    swift_correct: np.ndarray,
    super_correct: np.ndarray,
    confidence: float,
    resamples: int = 1000,
    seed: int = 0,
    relative_to_super: bool = False,
) -> np.ndarray:
    """For each k, the (1 - confidence) quantile of accuracy(k) over bootstrap resamples.

    With ``relative_to_super`` the bound is on accuracy(k) minus Super's accuracy on the same
    resample (a paired difference): a target relative to Super is uncertain only through the
    examples where the two disagree, not through Super's own sampling error.
    """
    rng = np.random.default_rng(seed)
    n = curve.n
    cs = np.asarray(super_correct, dtype=np.float64)[curve.order]
    cw = np.asarray(swift_correct, dtype=np.float64)[curve.order]
    accs = np.empty((resamples, n + 1))
    for b in range(resamples):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        head = np.concatenate([[0.0], np.cumsum(w * cs)])
        tail = np.concatenate([np.cumsum((w * cw)[::-1])[::-1], [0.0]])
        accs[b] = (head + tail) / n
        if relative_to_super:
            accs[b] -= head[-1] / n
    return np.quantile(accs, 1 - confidence, axis=0)


# ---------------------------------------------------------------- targets


class TargetError(ValueError):
    """A calibration target that is malformed or cannot be met; the message says which and why."""


@dataclass(frozen=True)
class Target:
    kind: str  # accuracy | accuracy_drop | super_fraction | compute_budget
    value: float

    def describe(self) -> str:
        return {
            "accuracy": f"accuracy >= {self.value:.2%}",
            "accuracy_drop": f"accuracy >= Super's - {self.value:g} pt",
            "super_fraction": f"Super fraction = {self.value:.1%}",
            "compute_budget": f"expected cost <= {self.value:g} x Super-only",
        }[self.kind]

    def validate(self) -> None:
        v = self.value
        if self.kind not in ("accuracy", "accuracy_drop", "super_fraction", "compute_budget"):
            raise TargetError(f"unknown target {self.kind!r}")
        if not math.isfinite(v):
            raise TargetError(f"target {self.kind} must be a finite number, got {v}")
        if self.kind in ("accuracy", "super_fraction") and not 0.0 <= v <= 1.0:
            raise TargetError(f"target {self.kind} must lie within [0, 1], got {v}")
        if self.kind == "accuracy_drop" and not 0.0 <= v <= 100.0:
            raise TargetError(f"max accuracy drop is in points within [0, 100], got {v}")
        if self.kind == "compute_budget" and v <= 0:
            raise TargetError(f"compute budget must be > 0 (relative to Super-only), got {v}")


@dataclass
class Choice:
    k: int
    threshold: float
    fraction: float
    accuracy: float
    lower_bound: float | None
    required_accuracy: float | None
    point_k: int | None  # the k a point estimate would have chosen (accuracy targets)


def choose(
    curve: Curve,
    target: Target,
    policy: Policy,
    super_accuracy: float,
    cost_ratio: float | None = None,
    lower: np.ndarray | None = None,
) -> Choice:
    """The cheapest point of ``curve`` that meets ``target`` (by ``lower`` bound when given).

    For ``accuracy_drop`` the ``lower`` bound must be the paired one
    (``bootstrap_lower_bound(..., relative_to_super=True)``): it is compared with ``-drop``.
    """
    target.validate()
    n = curve.n
    required = None
    point_k = None
    if target.kind in ("accuracy", "accuracy_drop"):
        required = target.value if target.kind == "accuracy" else super_accuracy - target.value / 100
        ok_point = np.flatnonzero(curve.accuracy >= required - 1e-12)
        if ok_point.size == 0:
            raise TargetError(
                f"{target.describe()} ({required:.2%}) cannot be met: the best routed accuracy on "
                f"validation is {curve.accuracy.max():.2%}"
            )
        point_k = int(ok_point[0])
        if lower is None:
            k = point_k
        else:
            need = required if target.kind == "accuracy" else -target.value / 100
            ok = np.flatnonzero(lower >= need - 1e-12)
            if ok.size == 0:
                what = "accuracy" if target.kind == "accuracy" else "accuracy minus Super's"
                raise TargetError(
                    f"{target.describe()} cannot be guaranteed at the requested confidence: the best lower "
                    f"bound of {what} is {lower.max():+.2%} (needed {need:+.2%}); lower the target or the confidence"
                )
            k = int(ok[0])
    elif target.kind == "super_fraction":
        k = int(round(target.value * n))
    else:
        if cost_ratio is None:
            raise TargetError("a compute budget needs the measured Swift/Super cost ratio")
        f = target.value - cost_ratio
        if f < 0:
            raise TargetError(
                f"compute budget {target.value:g} is below the cost of Swift alone ({cost_ratio:.3f} x Super)"
            )
        k = int(math.floor(min(f, 1.0) * n + 1e-9))
    threshold = curve.threshold_for_k(k, policy)
    k = curve.k_for_threshold(threshold, policy)  # the same k unless scores tie at the cut
    return Choice(
        k=k,
        threshold=threshold,
        fraction=k / n,
        accuracy=float(curve.accuracy[k]),
        lower_bound=None if lower is None else float(lower[k]),
        required_accuracy=required,
        point_k=point_k,
    )
