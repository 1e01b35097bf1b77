"""Calibration maths: temperature scaling, ECE, AUROC, the routing trade-off and threshold choice.

numpy only. Inputs are per-example arrays from a calibration split: Swift logits, Super
logits and true labels. A policy's score orders the examples from most to least unsure;
escalating the k most unsure gives one point of the trade-off curve:

    accuracy(k) = (sum of Super's correctness over the k escalated
                   + sum of Swift's correctness over the rest) / n

Thresholds are chosen on that curve for a target (accuracy, accuracy drop, Super share or
compute budget), only where a threshold can cut (never inside a block of tied scores). With
``confidence`` set, an accuracy target is certified by fixed-sequence testing over the scanned
thresholds (Learn-then-Test) instead of the point estimate; :func:`simulate_coverage` measures
how often that certificate holds over resampled calibration sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from elang.core.routing import Policy, logsumexp

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


def realizable(curve: Curve) -> np.ndarray:
    """Boolean [n + 1]: True where some threshold escalates exactly k examples.

    Inside a block of tied scores no threshold separates the block, so only the block ends
    (and k = 0, k = n) can be chosen: a target is never met by a cut the router cannot make.
    """
    s = curve.sorted_scores
    ok = np.ones(curve.n + 1, dtype=bool)
    if curve.n > 1:
        ok[1:-1] = s[:-1] != s[1:]
    return ok


def risk_curve(curve: Curve, swift_correct: np.ndarray, super_correct: np.ndarray, relative_to_super: bool):
    """Per-example loss statistics for every k: (mean loss, standard deviation of the loss).

    The loss is 1 - routed correctness, or with ``relative_to_super`` the paired
    Super-minus-routed correctness (in {-1, 0, 1}, zero wherever the two agree).
    """
    n = curve.n
    cs = np.asarray(super_correct, dtype=np.float64)[curve.order]
    cw = np.asarray(swift_correct, dtype=np.float64)[curve.order]
    if relative_to_super:
        head, head2 = np.zeros(n + 1), np.zeros(n + 1)
        d = cs - cw  # loss of a kept example; an escalated one equals Super: 0
        tail = np.concatenate([np.cumsum(d[::-1])[::-1], [0.0]])
        tail2 = np.concatenate([np.cumsum((d * d)[::-1])[::-1], [0.0]])
    else:
        head = np.concatenate([[0.0], np.cumsum(1 - cs)])
        head2 = head  # the loss is 0 or 1: its square is itself
        tail = np.concatenate([np.cumsum((1 - cw)[::-1])[::-1], [0.0]])
        tail2 = tail
    mean = (head + tail) / n
    second = (head2 + tail2) / n
    return mean, np.sqrt(np.maximum(second - mean * mean, 0.0))


def clt_p_values(mean: np.ndarray, sd: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """One-sided p-values of H0 "expected loss > alpha" (normal approximation of the mean loss).

    With no spread (sd = 0, e.g. every example on Super) the observed mean decides exactly.
    """
    p = np.where(mean <= alpha, 0.0, 1.0)
    spread = sd > 0
    z = (alpha - mean[spread]) / (sd[spread] / math.sqrt(n))
    p[spread] = 0.5 * np.vectorize(math.erfc, otypes=[float])(z / math.sqrt(2))
    return p


def fixed_sequence(p_values: np.ndarray, allowed: np.ndarray, delta: float) -> int | None:
    """Learn-then-Test fixed-sequence testing from k = n (all on Super) down to k = 0.

    Each allowed k is tested at level ``delta`` in turn; the walk stops at the first k whose
    null is not rejected. The smallest rejected k is returned (None if k = n itself fails).
    Stopping at the first failure is what makes the family-wise error over all the scanned
    thresholds at most ``delta`` (Angelopoulos et al. 2021, "Learn then Test").
    """
    chosen = None
    for k in range(len(p_values) - 1, -1, -1):
        if not allowed[k]:
            continue
        if p_values[k] > delta:
            break
        chosen = k
    return chosen


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
    confidence: float | None = None,
    swift_correct: np.ndarray | None = None,
    super_correct: np.ndarray | None = None,
) -> Choice:
    """The cheapest realizable point of ``curve`` that meets ``target``.

    With ``confidence`` (and the per-example correctness arrays) an accuracy target is
    certified by fixed-sequence testing: with probability about ``confidence`` over the draw
    of the calibration set, the chosen threshold meets the target on the population the set
    was drawn from (asymptotically: the p-values use the normal approximation). Without it,
    the point estimate on the curve decides.
    """
    target.validate()
    n = curve.n
    ok_k = realizable(curve)
    required = None
    point_k = None
    lower = None
    if target.kind in ("accuracy", "accuracy_drop"):
        required = target.value if target.kind == "accuracy" else super_accuracy - target.value / 100
        ok_point = np.flatnonzero((curve.accuracy >= required - 1e-12) & ok_k)
        if ok_point.size == 0:
            raise TargetError(
                f"{target.describe()} ({required:.2%}) cannot be met: the best routed accuracy on "
                f"calibration is {curve.accuracy.max():.2%}"
            )
        point_k = int(ok_point[0])
        if confidence is None:
            k = point_k
        else:
            if swift_correct is None or super_correct is None:
                raise ValueError("a confidence needs swift_correct and super_correct")
            relative = target.kind == "accuracy_drop"
            alpha = target.value / 100 if relative else 1 - target.value
            mean, sd = risk_curve(curve, swift_correct, super_correct, relative)
            found = fixed_sequence(clt_p_values(mean, sd, n, alpha), ok_k, 1 - confidence)
            if found is None:
                raise TargetError(
                    f"{target.describe()} cannot be certified at confidence {confidence:g} on {n} calibration "
                    "examples, even with every text on Super; lower the target or the confidence, or calibrate "
                    "on more examples"
                )
            k = found
            z = NormalDist().inv_cdf(confidence)
            lower = -(mean[k] + z * sd[k] / math.sqrt(n))  # lower confidence bound of -loss
            if not relative:
                lower += 1.0
    elif target.kind == "super_fraction":
        k = _next_realizable(ok_k, int(round(target.value * n)))
    else:
        if cost_ratio is None:
            raise TargetError("a compute budget needs the measured Swift/Super cost ratio")
        f = target.value - cost_ratio
        if f < 0:
            raise TargetError(
                f"compute budget {target.value:g} is below the cost of Swift alone ({cost_ratio:.3f} x Super)"
            )
        k = int(math.floor(min(f, 1.0) * n + 1e-9))
        while not ok_k[k]:  # a budget is a ceiling: step back to the end of the previous tie block
            k -= 1
    threshold = curve.threshold_for_k(k, policy)
    realized = curve.k_for_threshold(threshold, policy)
    if realized != k:  # cannot happen at a realizable k; refuse rather than miss a target silently
        raise TargetError(f"internal: the threshold for {k} escalations escalates {realized}")
    return Choice(
        k=k,
        threshold=threshold,
        fraction=k / n,
        accuracy=float(curve.accuracy[k]),
        lower_bound=lower,
        required_accuracy=required,
        point_k=point_k,
    )


def _next_realizable(ok_k: np.ndarray, k: int) -> int:
    """``k`` or, inside a tie block, the end of that block (all the tied examples escalate)."""
    while not ok_k[k]:
        k += 1
    return k


def simulate_coverage(
    scores: np.ndarray,
    swift_correct: np.ndarray,
    super_correct: np.ndarray,
    policy: Policy,
    target: Target,
    confidence: float,
    n: int,
    sims: int = 200,
    seed: int = 0,
) -> dict:
    """How often the certified threshold really meets ``target``, over resampled calibration sets.

    The given examples stand for the population: each simulation draws ``n`` of them with
    replacement, runs :func:`choose` with ``confidence`` on the draw, and checks the chosen
    threshold on all the given examples. The share of draws whose choice meets the target
    estimates the coverage of the stated probability.
    """
    scores = np.asarray(scores, dtype=np.float64)
    swift_correct = np.asarray(swift_correct, dtype=bool)
    super_correct = np.asarray(super_correct, dtype=bool)
    pop_super = float(super_correct.mean())
    need = target.value if target.kind == "accuracy" else pop_super - target.value / 100
    rng = np.random.default_rng(seed)
    met, fractions, failed = 0, [], 0
    for _ in range(sims):
        idx = rng.integers(0, len(scores), n)
        sw, su = swift_correct[idx], super_correct[idx]
        curve = routing_curve(scores[idx], sw, su, policy)
        try:
            ch = choose(
                curve, target, policy, float(su.mean()), confidence=confidence, swift_correct=sw, super_correct=su
            )
        except TargetError:
            failed += 1  # no threshold certified: everything stays on Super, which meets the target
            met += 1
            fractions.append(1.0)
            continue
        esc = policy.escalate(scores, ch.threshold)
        acc = float(np.mean(np.where(esc, super_correct, swift_correct)))
        met += acc >= need - 1e-12
        fractions.append(float(esc.mean()))
    return {
        "simulations": sims,
        "calibration_size": n,
        "population": len(scores),
        "stated": confidence,
        "coverage": met / sims,
        "uncertified": failed,
        "mean_super_fraction": float(np.mean(fractions)),
    }
