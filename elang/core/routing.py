"""Routing maths: energy, confidence scores, policies and the cascade.

numpy only: imported by the Triton router, the client, the calibration tools
and the tests alike. Conventions:

* ``logits`` has shape ``[rows, num_labels]``; every score is per row.
* A policy turns logits into a score and escalates a row to the next stage when
  the score is on the "unsure" side of the threshold: above it for energy and
  entropy, below it for the maximum softmax probability.
* One cascade step is :meth:`Policy.unsure` on a stage's logits; the router's
  execution model (``elang.core.execution``) applies it after every stage, so a two-stage
  Swift/Super pair and a longer cascade share one code path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

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
    uses_lengths: ClassVar[bool] = False  # callers need to measure text lengths only for policies that read them
    sequence: ClassVar[bool] = False  # scores a generated sequence's token energies instead of logits

    def score(self, logits: np.ndarray, temperature: float = 1.0, lengths: np.ndarray | None = None) -> np.ndarray:
        """Per-row score; ``lengths`` (UTF-8 bytes per text) matter to learned rules only."""
        return self.score_fn(logits, temperature)

    def escalate(self, scores: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
        """Boolean mask of rows to send to the next stage. NaN scores always escalate."""
        s = np.asarray(scores, dtype=np.float64)
        thr = np.asarray(threshold, dtype=np.float64)
        unsure = s > thr if self.escalate_above else s < thr
        return unsure | np.isnan(s)

    def unsure(
        self,
        logits: np.ndarray,
        threshold: float | np.ndarray,
        temperature: float = 1.0,
        lengths: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows of ``logits`` that this policy sends to the next stage (one cascade step)."""
        return self.escalate(self.score(logits, temperature, lengths), threshold)

    def initial_state(self, rows: int) -> np.ndarray | None:
        """Per-row state carried from stage to stage (None: the policy has none)."""
        return None

    def decide(
        self,
        logits: np.ndarray,
        threshold: float | np.ndarray,
        temperature: float = 1.0,
        lengths: np.ndarray | None = None,
        state: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One cascade step with state: (rows to escalate, scores, the rows' new state).

        The executor and the offline simulation both call this after every stage; ``state``
        holds the rows' state (from :meth:`initial_state`, then from the previous step).
        """
        scores = self.score(logits, temperature, lengths)
        return self.escalate(scores, threshold), scores, state


@dataclass(frozen=True)
class PatiencePolicy(Policy):
    """PABEE (Zhou et al. 2020): answer once ``threshold`` consecutive stages agreed with the one before.

    State per row: [previous stage's label, agreements in a row]. The score is the agreement
    count after this stage; a row escalates while it is below the threshold (the patience), so
    patience 0 answers at the first stage and patience ``p`` at stage ``p + 1`` at the earliest.
    """

    def initial_state(self, rows: int) -> np.ndarray:
        return np.stack([np.full(rows, -1.0), np.zeros(rows)], axis=1)

    def decide(
        self,
        logits: np.ndarray,
        threshold: float | np.ndarray,
        temperature: float = 1.0,
        lengths: np.ndarray | None = None,
        state: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = _as_logits(logits)
        if state is None or state.shape != (len(z), 2):
            raise ValueError(f"the patience policy needs its per-row state of shape [{len(z)}, 2]")
        label = z.argmax(axis=1).astype(np.float64)
        count = np.where(label == state[:, 0], state[:, 1] + 1, 0.0)
        return self.escalate(count, threshold), count, np.stack([label, count], axis=1)


def _no_stateless_score(logits: np.ndarray, temperature: float) -> np.ndarray:
    raise ValueError("the patience policy scores agreement across stages: use Policy.decide with its state")


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("energy", energy, True, "escalate when -T*logsumexp(logits/T) > threshold"),
        Policy("softmax", max_softmax, False, "escalate when max softmax probability < threshold"),
        Policy("entropy", entropy, True, "escalate when softmax entropy (nats) > threshold"),
        PatiencePolicy(
            "patience",
            _no_stateless_score,
            False,
            "answer once the label stayed the same for `threshold` consecutive stages (PABEE)",
        ),
    )
}
# Policies that score one stage's answer alone (the pair's calibration compares these).
STATELESS = ("energy", "softmax", "entropy")


# Seq2seq: a generating stage returns each token's energy and probability margin where a
# classifier returns logits: [rows, steps, 2] (channel 0 the energy, 1 the margin; NaN after a
# row's last token, and a margin channel of NaN where the stage answers none). A bare
# [rows, steps] array is token energies alone. These policies aggregate them into one score per
# row; a higher aggregate is less sure, so all escalate above the threshold. Token energies are
# computed at the stage's temperature, so the policy's own temperature is not used.
def token_channels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(energies [rows, steps], margins [rows, steps] or None) of a generating stage's answer."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 3 and v.shape[2] == 2 and v.shape[1] > 0:
        return v[..., 0], v[..., 1]
    if v.ndim == 2 and v.shape[1] > 0:
        return v, None
    raise ValueError(f"token scores must have shape [rows, steps >= 1] or [rows, steps >= 1, 2], got {v.shape}")


def stack_tokens(energies: np.ndarray, margins: np.ndarray | None) -> np.ndarray:
    """[rows, steps, 2] of token energies and margins (NaN margins when there are none)."""
    e = np.asarray(energies, dtype=np.float32)
    m = np.full_like(e, np.nan) if margins is None else np.asarray(margins, dtype=np.float32)
    if m.shape != e.shape:
        raise ValueError(f"token margins of shape {list(m.shape)} for energies of shape {list(e.shape)}")
    return np.stack([e, m], axis=-1)


def _token_energies(values: np.ndarray) -> np.ndarray:
    return token_channels(values)[0]


def _per_row(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    out = np.full(len(x), np.nan)
    has = ~np.all(np.isnan(x), axis=1)  # a row without tokens scores NaN (and escalates)
    if has.any():
        out[has] = fn(x[has])
    return out


def _nan_safe(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, float], np.ndarray]:
    def score(energies: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        return _per_row(fn, _token_energies(energies))

    return score


MIN_MARGIN = "min-margin"


def _least_margin(values: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """1 - the least token probability margin: 0 when every token was sure, up to 1."""
    _, margins = token_channels(values)
    if margins is None or np.isnan(margins).all():
        raise ValueError(
            f"the {MIN_MARGIN} policy scores each token's probability margin (TOKEN_MARGIN), and the "
            "scores given hold token energies only: export the stages with this version of elang"
        )
    return _per_row(lambda m: 1.0 - np.nanmin(m, axis=1), margins)


@dataclass(frozen=True)
class SequencePolicy(Policy):
    """A policy over a generated sequence's token energies (see ``SEQUENCE_POLICIES``)."""

    sequence: ClassVar[bool] = True
    needs_margins: bool = False  # scores TOKEN_MARGIN, which every stage must then answer


def quantile_policy(q: float) -> SequencePolicy:
    """Chow-Quantile (Gupta et al., ICLR 2024): the q-quantile of a sequence's token energies."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    return SequencePolicy(
        f"quantile:{q:g}",
        _nan_safe(lambda e: np.nanquantile(e, q, axis=1)),
        True,
        f"escalate when the {q:g}-quantile of the token energies > threshold",
    )


SEQUENCE_POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        SequencePolicy(
            "first", _nan_safe(lambda e: e[:, 0]), True, "escalate when the first token's energy > threshold"
        ),
        SequencePolicy(
            "mean", _nan_safe(lambda e: np.nanmean(e, axis=1)), True, "escalate when the mean token energy > threshold"
        ),
        SequencePolicy(
            "max", _nan_safe(lambda e: np.nanmax(e, axis=1)), True, "escalate when the highest token energy > threshold"
        ),
        SequencePolicy(
            "sum", _nan_safe(lambda e: np.nansum(e, axis=1)), True, "escalate when the summed token energy > threshold"
        ),
        quantile_policy(0.5),
        quantile_policy(0.8),
        quantile_policy(0.9),
        SequencePolicy(
            MIN_MARGIN,
            _least_margin,
            True,
            "escalate when 1 - the least token probability margin (top-1 minus top-2) > threshold",
            needs_margins=True,
        ),
    )
}


def is_sequence_policy(name: str) -> bool:
    return name in SEQUENCE_POLICIES or name.startswith("quantile:")


LEARNED = "learned"
POLICY_NAMES = (*POLICIES, LEARNED)  # "learned" needs a fitted rule: see :func:`learned_policy`


def text_lengths(texts: object) -> np.ndarray:
    """UTF-8 byte length of each text (str or bytes), the length feature of learned rules."""
    flat = np.asarray(texts, dtype=np.object_).ravel()
    return np.array([len(t) if isinstance(t, bytes) else len(str(t).encode()) for t in flat], dtype=np.float64)


FEATURES = ("probabilities", "max_probability", "energy", "entropy", "margin", "max_logit", "log_length")


def deferral_features(logits: np.ndarray, temperature: float, lengths: np.ndarray | None) -> np.ndarray:
    """What a learned deferral rule sees of one Swift answer: [rows, labels + 6] (see ``FEATURES``)."""
    z = _as_logits(logits)
    p = softmax(z, temperature)
    top = np.sort(p, axis=-1)
    margin = top[:, -1] - (top[:, -2] if z.shape[1] > 1 else 0.0)
    n = len(z)
    ln = np.zeros(n) if lengths is None else np.log1p(np.asarray(lengths, dtype=np.float64).reshape(n))
    cols = [top[:, -1], energy(z, temperature), entropy(z, temperature), margin, z.max(axis=1), ln]
    return np.concatenate([p, np.stack(cols, axis=1)], axis=1)


@dataclass(frozen=True)
class DeferralRule:
    """A logistic model of whether deferring one text to the next stage fixes Swift's answer.

    A post-hoc deferral rule (Jitkrittum et al., "When Does Confidence-Based Cascade Deferral
    Suffice?", NeurIPS 2023): trained on a calibration split to predict "Swift is wrong and the
    next stage is right" from what Swift returned; the score is that probability.
    """

    weights: np.ndarray  # [features]
    bias: float
    mean: np.ndarray  # feature standardisation
    scale: np.ndarray
    temperature: float
    num_labels: int
    # What the rule reads: "logits" (a classifier's, FEATURES) or "tokens" (a generation's token
    # energies and, with ``margins``, its token margins: sequence_feature_names).
    inputs: str = "logits"
    margins: bool = False

    @property
    def feature_names(self) -> list[str]:
        if self.inputs == "tokens":
            return sequence_feature_names(self.margins)
        return list(FEATURES)

    def features(self, values: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        if self.inputs == "tokens":
            energies, margins = token_channels(values)
            if self.margins and (margins is None or np.isnan(margins).all()):
                raise ValueError(
                    "this learned rule reads each token's probability margin (TOKEN_MARGIN), and the scores "
                    "given hold token energies only: export the stages with this version of elang"
                )
            return sequence_features(energies, margins if self.margins else None)
        z = _as_logits(values)
        if z.shape[1] != self.num_labels:
            raise ValueError(f"the learned rule was fitted on {self.num_labels} labels, got logits with {z.shape[1]}")
        return deferral_features(z, self.temperature, lengths)

    def score(self, logits: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        x = (self.features(logits, lengths) - self.mean) / self.scale
        return 1 / (1 + np.exp(-(x @ self.weights + self.bias)))

    def to_dict(self) -> dict:
        return {
            "kind": "logistic",
            "predicts": "the next stage fixes Swift's answer",
            "inputs": self.inputs,
            "features": self.feature_names,
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "temperature": self.temperature,
            "num_labels": self.num_labels,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DeferralRule:
        try:
            inputs = d.get("inputs", "logits")
            if inputs not in ("logits", "tokens"):
                raise ValueError(f"malformed learned deferral rule: it reads {inputs!r}, not logits or tokens")
            margins = inputs == "tokens" and list(d["features"]) == sequence_feature_names(True)
            want = sequence_feature_names(margins) if inputs == "tokens" else list(FEATURES)
            if list(d["features"]) != want:
                raise ValueError(f"the rule uses features {d['features']}, this version computes {want}")
            rule = cls(
                np.asarray(d["weights"], dtype=np.float64),
                float(d["bias"]),
                np.asarray(d["mean"], dtype=np.float64),
                np.asarray(d["scale"], dtype=np.float64),
                _check_temperature(d["temperature"]),
                int(d["num_labels"]),
                inputs,
                margins,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed learned deferral rule: {exc!r}") from None
        f = len(want) if inputs == "tokens" else rule.num_labels + len(FEATURES) - 1
        if rule.weights.shape != (f,) or rule.mean.shape != (f,) or rule.scale.shape != (f,):
            what = f"{len(want)} token features" if inputs == "tokens" else f"{rule.num_labels} labels"
            raise ValueError(f"malformed learned deferral rule: shapes do not fit {what}")
        return rule


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 800
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression on standardised ``x`` (full-batch gradient descent with
    Adam): (weights, bias, feature mean, feature scale)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = (x - mean) / scale
    w = np.zeros(x.shape[1])
    b = np.array(math.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3)))
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    for t in range(1, steps + 1):
        g = (1 / (1 + np.exp(-(x @ w + b))) - y) / len(x)
        grads = [x.T @ g + l2 * w, g.sum()]
        for i, (param, grad) in enumerate(zip((w, b), grads, strict=True)):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad * grad
            param -= 0.05 * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    return w, float(b), mean, scale


def fit_deferral_rule(
    logits: np.ndarray,
    lengths: np.ndarray | None,
    swift_correct: np.ndarray,
    next_correct: np.ndarray,
    temperature: float = 1.0,
    l2: float = 1e-2,
    steps: int = 800,
) -> DeferralRule:
    """Fit a :class:`DeferralRule` on one split (:func:`fit_logistic`)."""
    z = _as_logits(logits)
    x = deferral_features(z, temperature, lengths)
    y = ~np.asarray(swift_correct, dtype=bool) & np.asarray(next_correct, dtype=bool)
    w, b, mean, scale = fit_logistic(x, y, l2, steps)
    return DeferralRule(w, b, mean, scale, float(temperature), z.shape[1])


# What a learned rule sees of one generation: the served token-energy aggregates, the least
# token energy and the token count, and (with margins) the least, mean and first token margin.
_SEQUENCE_AGGREGATES = ("first", "mean", "max", "sum", "quantile:0.5", "quantile:0.8", "quantile:0.9")


def sequence_feature_names(margins: bool) -> list[str]:
    names = [f"energy_{a}" for a in _SEQUENCE_AGGREGATES] + ["energy_min", "tokens"]
    return names + (["margin_min", "margin_mean", "margin_first"] if margins else [])


def sequence_features(energies: np.ndarray, margins: np.ndarray | None) -> np.ndarray:
    """[rows, features] (:func:`sequence_feature_names`) of token energies [rows, steps] and margins
    (NaN after a row's last token); a row without tokens has zeros."""
    e = np.asarray(energies, dtype=np.float64)
    with np.errstate(all="ignore"):
        cols = [get_policy(a).score(e) for a in _SEQUENCE_AGGREGATES]
        cols += [_per_row(lambda x: np.nanmin(x, axis=1), e), (~np.isnan(e)).sum(axis=1).astype(np.float64)]
        if margins is not None:
            m = np.asarray(margins, dtype=np.float64)
            cols += [
                _per_row(lambda x: np.nanmin(x, axis=1), m),
                _per_row(lambda x: np.nanmean(x, axis=1), m),
                m[:, 0] if m.shape[1] else np.full(len(m), np.nan),
            ]
    x = np.stack(cols, axis=1)
    return np.where(np.isfinite(x), x, 0.0)


def fit_sequence_rule(
    energies: np.ndarray,
    margins: np.ndarray | None,
    swift_correct: np.ndarray,
    next_correct: np.ndarray,
    l2: float = 1e-2,
    steps: int = 800,
) -> DeferralRule:
    """A :class:`DeferralRule` on a generation's token scores: P(the next stage fixes Swift's output)."""
    x = sequence_features(energies, margins)
    y = ~np.asarray(swift_correct, dtype=bool) & np.asarray(next_correct, dtype=bool)
    w, b, mean, scale = fit_logistic(x, y, l2, steps)
    return DeferralRule(w, b, mean, scale, 1.0, 0, "tokens", margins is not None)


@dataclass(frozen=True)
class LearnedPolicy(Policy):
    """The ``learned`` policy: escalate when P(the next stage fixes Swift) exceeds the threshold."""

    rule: DeferralRule | None = None
    uses_lengths: ClassVar[bool] = True

    def score(self, logits: np.ndarray, temperature: float = 1.0, lengths: np.ndarray | None = None) -> np.ndarray:
        return self.rule.score(logits, lengths)


@dataclass(frozen=True)
class SequenceLearnedPolicy(LearnedPolicy):
    """The ``learned`` policy of a generating router: its rule reads Swift's token scores."""

    uses_lengths: ClassVar[bool] = False
    sequence: ClassVar[bool] = True
    needs_margins: bool = False


def learned_policy(rule: DeferralRule) -> Policy:
    """A :class:`LearnedPolicy` around ``rule`` (the rule carries its own temperature)."""
    what = "escalate when P(the next stage fixes Swift) > threshold"
    if rule.inputs == "tokens":
        return SequenceLearnedPolicy(LEARNED, lambda z, t: rule.score(z), True, what, rule, rule.margins)
    return LearnedPolicy(LEARNED, lambda z, t: rule.score(z), True, what, rule)


def get_policy(name: str) -> Policy:
    """Look a policy up by name, with an error that lists the known ones."""
    if name == LEARNED:
        raise ValueError("the learned policy needs its fitted rule: see elang.core.routing.learned_policy")
    if name in POLICIES:
        return POLICIES[name]
    if name in SEQUENCE_POLICIES:
        return SEQUENCE_POLICIES[name]
    if name.startswith("quantile:"):
        try:
            return quantile_policy(float(name.split(":", 1)[1]))
        except ValueError as exc:
            raise ValueError(f"policy {name!r}: {exc}; write quantile:Q with Q in [0, 1], e.g. quantile:0.9") from None
    known = ", ".join([*sorted(POLICY_NAMES), *SEQUENCE_POLICIES, "quantile:Q"])
    raise ValueError(f"unknown routing policy {name!r}; known policies: {known}")


def escalates_above(name: str) -> bool:
    """Whether policy ``name`` escalates a row whose score is above the threshold (the learned rule,
    P(the next stage fixes Swift), does), without its fitted rule: what a threshold of +inf or -inf
    means under it (send nothing on, or everything)."""
    return True if name == LEARNED else get_policy(name).escalate_above


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


def cascade_offline(
    stage_logits: np.ndarray,
    policy: Policy,
    thresholds: float | np.ndarray,
    temperatures: float | np.ndarray = 1.0,
    lengths: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the executor does with every stage's logits known in advance: (route, logits, scores).

    ``stage_logits`` is [rows, stages, labels]; ``thresholds`` one per escalation step (or one for
    all); ``temperatures`` one per stage (or one for all). Calibration and the tests use it; the
    router makes the same :meth:`Policy.decide` calls stage by stage.
    """
    z = np.asarray(stage_logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"stage logits must have shape [rows, stages, labels], got {z.shape}")
    n, stages = z.shape[:2]
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (max(stages - 1, 1),))
    temps = np.broadcast_to(np.asarray(temperatures, dtype=np.float64), (stages,))
    route = np.zeros(n, dtype=np.int32)
    scores = np.full(n, np.nan)
    state = policy.initial_state(n)
    live = np.arange(n)
    for k in range(stages):
        last = k == stages - 1
        unsure, s, new = policy.decide(
            z[live, k],
            np.nan if last else thr[k],
            float(temps[k]),
            None if lengths is None else lengths[live],
            None if state is None else state[live],
        )
        route[live], scores[live] = k, s
        if new is not None:
            state[live] = new
        if last:
            break
        live = live[unsure]
        if not live.size:
            break
    return route, z[np.arange(n), route].astype(np.float32), scores
