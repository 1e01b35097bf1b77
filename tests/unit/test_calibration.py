"""Calibration maths against brute force and synthetic ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elang.calibration.thresholds import (
    Target,
    TargetError,
    auroc,
    choose,
    clt_p_values,
    ece,
    fit_temperature,
    fixed_sequence,
    realizable,
    risk_curve,
    routing_curve,
    simulate_coverage,
)
from elang.core.routing import get_policy


def _synthetic(n=400, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    # Swift is more often wrong where the score is high; Super is right 85% of the time.
    swift_ok = rng.random(n) > 1 / (1 + np.exp(-2 * scores))
    super_ok = rng.random(n) < 0.85
    return scores, swift_ok, super_ok


def _brute_accuracy(scores, swift_ok, super_ok, policy, thr):
    esc = policy.escalate(scores, thr)
    return np.mean(np.where(esc, super_ok, swift_ok)), esc.mean()


@pytest.mark.parametrize("policy_name", ["energy", "softmax"])
@pytest.mark.parametrize("target_acc", [0.6, 0.7, 0.75, 0.8])
def test_accuracy_target_matches_brute_force(policy_name, target_acc):
    pol = get_policy(policy_name)
    scores, swift_ok, super_ok = _synthetic()
    if policy_name == "softmax":
        scores = -scores  # low max-probability = unsure
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    # brute force: every threshold between consecutive sorted scores, plus the extremes
    s = np.sort(scores)
    cands = np.concatenate([[-np.inf, np.inf], (s[1:] + s[:-1]) / 2, s])
    best = min(
        (frac, acc)
        for thr in cands
        for acc, frac in [_brute_accuracy(scores, swift_ok, super_ok, pol, thr)]
        if acc >= target_acc - 1e-12
    )
    choice = choose(curve, Target("accuracy", target_acc), pol, super_accuracy=super_ok.mean())
    acc, frac = _brute_accuracy(scores, swift_ok, super_ok, pol, choice.threshold)
    assert frac == pytest.approx(best[0])
    assert acc == pytest.approx(choice.accuracy) and acc >= target_acc


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_super_fraction_target_is_exact(fraction):
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=200)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    choice = choose(curve, Target("super_fraction", fraction), pol, super_ok.mean())
    assert pol.escalate(scores, choice.threshold).mean() == pytest.approx(fraction)


def test_compute_budget():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=100)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    choice = choose(curve, Target("compute_budget", 0.4), pol, super_ok.mean(), cost_ratio=0.15)
    assert choice.fraction == pytest.approx(0.25)
    with pytest.raises(TargetError, match="below the cost of Swift alone"):
        choose(curve, Target("compute_budget", 0.1), pol, super_ok.mean(), cost_ratio=0.15)


def test_accuracy_drop_is_relative_to_super():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic()
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    choice = choose(curve, Target("accuracy_drop", 1.0), pol, super_accuracy=0.85)
    assert choice.required_accuracy == pytest.approx(0.84)
    assert choice.accuracy >= 0.84 and (choice.k == 0 or curve.accuracy[choice.k - 1] < 0.84)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (Target("accuracy", 0.999), "cannot be met"),
        (Target("accuracy", 1.5), r"within \[0, 1\]"),
        (Target("super_fraction", -0.1), r"within \[0, 1\]"),
        (Target("accuracy_drop", -1), "points"),
        (Target("compute_budget", 0), "> 0"),
        (Target("accuracy", float("nan")), "finite"),
    ],
)
def test_bad_targets(target, match):
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic()
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    with pytest.raises(TargetError, match=match):
        choose(curve, target, pol, super_ok.mean())


def test_certified_choice_costs_super_share():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=600)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    target = Target("accuracy", float(curve.accuracy[int(0.5 * 600)]))
    point = choose(curve, target, pol, super_ok.mean())
    safe = choose(curve, target, pol, super_ok.mean(), confidence=0.9, swift_correct=swift_ok, super_correct=super_ok)
    assert safe.fraction >= point.fraction and safe.point_k == point.k
    assert safe.lower_bound is not None and safe.lower_bound <= safe.accuracy


def test_fixed_sequence_stops_at_the_first_failure():
    allowed = np.ones(6, dtype=bool)
    # From k = 5 down: rejected, rejected, NOT rejected, then rejected again below.
    p = np.array([0.0, 0.01, 0.5, 0.02, 0.0, 0.0])
    assert fixed_sequence(p, allowed, 0.1) == 3  # never jumps the failure at k = 2
    allowed[3] = False
    assert fixed_sequence(p, allowed, 0.1) == 4  # a cut inside a tie block is skipped, not taken
    assert fixed_sequence(np.ones(6), np.ones(6, dtype=bool), 0.1) is None


def test_risk_curve_matches_brute_force():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=50)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    for relative in (False, True):
        mean, sd = risk_curve(curve, swift_ok, super_ok, relative)
        for k in (0, 7, 50):
            esc = np.zeros(50, dtype=bool)
            esc[curve.order[:k]] = True
            routed = np.where(esc, super_ok, swift_ok).astype(float)
            loss = super_ok - routed if relative else 1 - routed
            assert mean[k] == pytest.approx(loss.mean()) and sd[k] == pytest.approx(loss.std())
    p = clt_p_values(np.array([0.0, 0.02, 0.1]), np.array([0.0, 0.1, 0.1]), 1000, 0.05)
    assert p[0] == 0.0 and p[1] < 1e-10 and p[2] > 0.99


def test_ties_at_the_cut_never_miss_the_target():
    pol = get_policy("energy")
    # Ten examples share one score; Swift is wrong on all of them, Super right.
    scores = np.array([5.0, 4.0] + [3.0] * 10 + list(np.linspace(2, 0, 28)))
    swift_ok = np.array([False, False] + [False] * 10 + [True] * 28)
    super_ok = np.ones(40, dtype=bool)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    ok = realizable(curve)
    assert ok[2] and not ok[3] and not ok[11] and ok[12]
    for target in (Target("accuracy", 0.8), Target("super_fraction", 0.1)):
        ch = choose(curve, target, pol, 1.0)
        assert ch.k == 12  # the whole tie block escalates
        esc = pol.escalate(scores, ch.threshold)
        assert int(esc.sum()) == 12
        if target.kind == "accuracy":
            assert np.mean(np.where(esc, super_ok, swift_ok)) >= 0.8


def test_coverage_of_the_certificate_by_simulation():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=3000, seed=5)
    target = Target("accuracy_drop", 2.0)
    cov = simulate_coverage(scores, swift_ok, super_ok, pol, target, 0.9, n=800, sims=100, seed=1)
    assert cov["simulations"] == 100 and cov["stated"] == 0.9
    assert cov["coverage"] >= 0.85  # the stated probability (0.9), within simulation noise
    # Without a guarantee (confidence ~ 0.5: the point estimate, roughly) the target fails far more often.
    loose = simulate_coverage(scores, swift_ok, super_ok, pol, target, 0.5, n=800, sims=100, seed=1)
    assert loose["coverage"] < cov["coverage"]


def test_temperature_fit_recovers_known_t():
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(20000, 4))
    t_true = 2.5
    p = np.exp(z / t_true)
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in p])
    t = fit_temperature(z, labels)
    assert t == pytest.approx(t_true, rel=0.05)
    assert ece(z, labels, t) < ece(z, labels, 1.0)


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(2)
    s = rng.integers(0, 5, 60).astype(float)  # many ties
    y = rng.random(60) < 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert auroc(s, y) == pytest.approx(np.mean(pairs))
    assert auroc(np.arange(4.0), np.array([False, False, True, True])) == 1.0
    assert math.isnan(auroc(np.arange(3.0), np.zeros(3, bool)))


def test_paired_certificate_for_a_drop_target():
    pol = get_policy("energy")
    scores, swift_ok, super_ok = _synthetic(n=800)
    curve = routing_curve(scores, swift_ok, super_ok, pol)
    choice = choose(
        curve,
        Target("accuracy_drop", 1.0),
        pol,
        super_ok.mean(),
        confidence=0.9,
        swift_correct=swift_ok,
        super_correct=super_ok,
    )
    mean, sd = risk_curve(curve, swift_ok, super_ok, relative_to_super=True)
    assert mean[-1] == 0.0 and sd[-1] == 0.0  # Super-only never differs from Super
    assert choice.lower_bound >= -0.01 - 1e-12  # met by the bound
    p = clt_p_values(mean, sd, curve.n, 0.01)
    assert np.all(p[choice.k :] <= 0.1)  # every threshold above the choice was rejected too


def test_calibration_warns_about_a_useless_swift_and_a_backwards_criterion():
    from elang.calibration.classify import Scores, calibrate

    rng = np.random.default_rng(0)
    n = 600
    labels = rng.integers(0, 3, n)
    swift = np.zeros((n, 3))
    swift[:, 2] = 5.0 + rng.normal(size=n)  # always "positive"
    super_ = np.eye(3)[labels] * 4.0
    record, _, rows = calibrate(Scores(swift, super_, labels), Target("super_fraction", 0.3), "energy")
    assert any("single class" in w for w in record.warnings)
    # Make Swift confident exactly where it is wrong: every criterion ranks backwards.
    swift = np.eye(3)[labels] * 0.5
    wrong = rng.random(n) < 0.4
    swift[wrong] = np.eye(3)[(labels[wrong] + 1) % 3] * 8.0
    record, _, rows = calibrate(Scores(swift, super_, labels), Target("super_fraction", 0.3), "energy")
    assert any("worse than chance" in w and "energy" in w for w in record.warnings)
    # Confidently wrong: the NLL wants an ever larger T; it stops at the bound, and says so.
    assert record.temperature == pytest.approx(10.0)
    assert any("temperature hit its bound" in w for w in record.warnings)


def test_the_learned_rule_needs_texts_the_super_fixes_among_those_it_is_fitted_on():
    """A user's small file where the Super never fixes Swift on the fit part: the learned rule would be
    a constant (every text one score, so the target could only be met by all or none). Asked for,
    it is refused, naming why; under auto it is left out and a fixed criterion is chosen."""
    from elang.calibration.classify import Scores, calibrate

    rng = np.random.default_rng(1)
    n = 90
    labels = rng.integers(0, 3, n)
    swift = np.eye(3)[labels] * 2.0 + rng.normal(scale=0.5, size=(n, 3))
    super_ = swift.copy()  # the Super answers as Swift does: it never fixes a mistake
    with pytest.raises(TargetError, match=r"criterion learned cannot be fitted: on the 30 examples .* never fixes"):
        calibrate(Scores(swift, super_, labels), Target("super_fraction", 0.5), "learned")
    record, _, rows = calibrate(Scores(swift, super_, labels), Target("super_fraction", 0.5), "auto", confidence=None)
    assert record.criterion != "learned" and "learned" in {r.name for r in rows}
    assert record.calibration["super_fraction"] == pytest.approx(0.5)
