"""Routing maths against hand-computed values and brute force."""

import json
import math

import numpy as np
import pytest

from elang.core.routing import (
    STATELESS,
    energy,
    entropy,
    get_policy,
    max_softmax,
    parse_threshold,
    parse_thresholds,
    softmax,
    threshold_for_fraction,
)


def test_energy_hand_computed():
    # -log(e^0 + e^0) = -log 2
    assert energy(np.array([[0.0, 0.0]]))[0] == pytest.approx(-math.log(2))
    # T = 2, logits [1, 2, 3]: -2 * log(e^0.5 + e^1 + e^1.5)
    want = -2 * math.log(math.exp(0.5) + math.exp(1.0) + math.exp(1.5))
    assert energy(np.array([[1.0, 2.0, 3.0]]), temperature=2.0)[0] == pytest.approx(want)


def test_energy_is_stable_for_huge_logits():
    e = energy(np.array([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype=np.float32))
    assert np.allclose(e, [-1000 - math.log(2), 1000 - math.log(2)])


def test_energy_per_row_in_a_batch():
    logits = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])
    e = energy(logits)
    assert e.shape == (3,)
    # a confident row has lower energy than an unsure one
    assert e[0] < e[1] < -math.log(3) + 1e-9 + 0.1


def test_softmax_and_entropy_hand_computed():
    p = softmax(np.array([[0.0, math.log(3.0)]]))[0]
    assert p == pytest.approx([0.25, 0.75])
    assert max_softmax(np.array([[0.0, math.log(3.0)]]))[0] == pytest.approx(0.75)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert entropy(np.array([[0.0, math.log(3.0)]]))[0] == pytest.approx(h)
    assert entropy(np.zeros((1, 4)))[0] == pytest.approx(math.log(4))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_refused(bad):
    with pytest.raises(ValueError, match="temperature"):
        energy(np.zeros((1, 2)), temperature=bad)


def test_bad_logits_shape_refused():
    with pytest.raises(ValueError, match="shape"):
        energy(np.zeros(3))


def test_policy_sides():
    scores = np.array([-3.0, -1.0, 0.5, np.nan])
    assert get_policy("energy").escalate(scores, -2.0).tolist() == [False, True, True, True]
    assert get_policy("entropy").escalate(scores, -2.0).tolist() == [False, True, True, True]
    assert get_policy("softmax").escalate(scores, -2.0).tolist() == [True, False, False, True]
    # infinite thresholds: everything or nothing
    assert not get_policy("energy").escalate(scores[:3], math.inf).any()
    assert get_policy("energy").escalate(scores[:3], -math.inf).all()


def test_unknown_policy_names_the_known_ones():
    with pytest.raises(ValueError, match="energy, entropy, learned, patience, softmax"):
        get_policy("deebert")


@pytest.mark.parametrize(
    ("value", "want"), [(0.5, 0.5), (2, 2.0), ("-1.5", -1.5), ("inf", math.inf), (" -inf ", -math.inf)]
)
def test_parse_threshold_good(value, want):
    assert parse_threshold(value) == want


@pytest.mark.parametrize("value", ["abc", "", "nan", float("nan"), True, None, [1.0]])
def test_parse_threshold_bad(value):
    with pytest.raises(ValueError):
        parse_threshold(value)


def test_parse_thresholds_counts():
    assert parse_thresholds("1,2", 2) == [1.0, 2.0]
    with pytest.raises(ValueError, match="expected 1 threshold"):
        parse_thresholds("1,2", 1)


@pytest.mark.parametrize("policy", sorted(STATELESS))
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.24, 0.5, 0.77, 1.0])
def test_threshold_for_fraction_is_exact(policy, fraction):
    rng = np.random.default_rng(7)
    scores = rng.normal(size=101)
    pol = get_policy(policy)
    thr = threshold_for_fraction(scores, fraction, pol)
    assert pol.escalate(scores, thr).sum() == round(fraction * 101)


def test_threshold_for_fraction_refuses_bad_fraction():
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        threshold_for_fraction(np.zeros(3), 1.5, get_policy("energy"))
    with pytest.raises(ValueError, match="at least one score"):
        threshold_for_fraction(np.zeros(0), 0.5, get_policy("energy"))


def test_unsure_is_one_cascade_step():
    swift = np.array([[0.0, 0.0], [9.0, 0.0], [np.nan, 0.0]], dtype=np.float32)
    pol = get_policy("energy")
    assert pol.unsure(swift, np.array([-np.inf, 0.0, 0.0])).tolist() == [True, False, True]  # NaN escalates
    assert pol.unsure(swift[:2], np.inf).tolist() == [False, False]
    soft = get_policy("softmax")
    assert soft.unsure(swift[:2], 0.9).tolist() == [True, False]
    assert soft.unsure(swift[:2], 0.9, temperature=100.0).tolist() == [True, True]  # flattened by T


def _deferral_data(n=3000, seed=0):
    """Swift is unsure on long texts; Super fixes Swift exactly where the text is long."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, 3))
    lengths = rng.integers(5, 200, n).astype(float)
    swift_ok = rng.random(n) < np.where(lengths > 100, 0.3, 0.9)
    super_ok = np.where(lengths > 100, True, swift_ok)
    return logits, lengths, swift_ok, super_ok


def test_learned_rule_finds_what_confidence_cannot():
    from elang.calibration.thresholds import auroc
    from elang.core.routing import DeferralRule, fit_deferral_rule, learned_policy

    logits, lengths, swift_ok, super_ok = _deferral_data()
    rule = fit_deferral_rule(logits[:2000], lengths[:2000], swift_ok[:2000], super_ok[:2000])
    pol = learned_policy(rule)
    held = pol.score(logits[2000:], 1.0, lengths[2000:])
    fixes = ~swift_ok[2000:] & super_ok[2000:]
    assert auroc(held, fixes) > 0.8  # the length carries the signal
    assert abs(auroc(get_policy("energy").score(logits[2000:]), fixes) - 0.5) < 0.1  # confidence does not
    again = DeferralRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert np.allclose(learned_policy(again).score(logits, 1.0, lengths), pol.score(logits, 1.0, lengths))
    esc = pol.unsure(logits[:5], 0.0, 1.0, lengths[:5])
    assert esc.dtype == bool and esc.shape == (5,)


def test_learned_rule_refuses_what_it_was_not_fitted_for():
    from elang.core.routing import DeferralRule, fit_deferral_rule, text_lengths

    logits, lengths, swift_ok, super_ok = _deferral_data(300)
    rule = fit_deferral_rule(logits, lengths, swift_ok, super_ok)
    with pytest.raises(ValueError, match="fitted on 3 labels"):
        rule.score(np.zeros((2, 4)))
    bad = rule.to_dict() | {"weights": [0.0]}
    with pytest.raises(ValueError, match="shapes"):
        DeferralRule.from_dict(bad)
    with pytest.raises(ValueError, match="malformed"):
        DeferralRule.from_dict({"features": rule.to_dict()["features"]})
    with pytest.raises(ValueError, match="needs its fitted rule"):
        get_policy("learned")
    assert text_lengths(np.array([[b"ab"], ["\u00e9"]], dtype=object)).tolist() == [2.0, 2.0]


def test_which_way_each_policy_escalates_is_known_without_a_fitted_rule():
    from elang.core.routing import escalates_above

    assert escalates_above("learned") and escalates_above("energy") and escalates_above("entropy")
    assert not escalates_above("softmax")
    with pytest.raises(ValueError, match="unknown routing policy"):
        escalates_above("nope")
