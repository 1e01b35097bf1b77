"""Routing maths against hand-computed values and brute force."""

import math

import numpy as np
import pytest

from elang.routing import (
    POLICIES,
    CascadeResult,
    StageError,
    energy,
    entropy,
    get_policy,
    max_softmax,
    parse_threshold,
    parse_thresholds,
    run_cascade,
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
    with pytest.raises(ValueError, match="energy, entropy, softmax"):
        get_policy("patience")


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


@pytest.mark.parametrize("policy", sorted(POLICIES))
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


def _stage(logits, calls):
    def call(rows):
        calls.append(rows.tolist())
        return logits[rows]

    return call


def test_cascade_routes_exactly_the_rows_above_threshold():
    rng = np.random.default_rng(0)
    swift = rng.normal(size=(20, 3)).astype(np.float32)
    sup = rng.normal(size=(20, 3)).astype(np.float32)
    calls: list = []
    thr = float(np.median(energy(swift)))
    res = run_cascade(20, [_stage(swift, calls), _stage(sup, calls)], get_policy("energy"), [thr])
    assert isinstance(res, CascadeResult)
    want = energy(swift) > thr
    assert (res.route == 1).tolist() == want.tolist()
    assert np.array_equal(res.logits[want], sup[want])
    assert np.array_equal(res.logits[~want], swift[~want])
    assert calls[0] == list(range(20))
    assert calls[1] == np.flatnonzero(want).tolist()  # super sees only the escalated rows


def test_cascade_per_row_thresholds_and_no_call_when_nothing_escalates():
    swift = np.array([[0.0, 0.0], [9.0, 0.0]], dtype=np.float32)
    calls: list = []
    res = run_cascade(2, [_stage(swift, calls), _stage(swift, calls)], get_policy("energy"), [np.array([-np.inf, 0.0])])
    assert res.route.tolist() == [1, 0]
    calls.clear()
    res = run_cascade(2, [_stage(swift, calls), _stage(swift, calls)], get_policy("energy"), [np.inf])
    assert res.route.tolist() == [0, 0] and len(calls) == 1


def test_three_stage_cascade():
    logits = [np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 0.0]], dtype=np.float32)] * 3
    calls: list = []
    stages = [_stage(lg, calls) for lg in logits]
    res = run_cascade(3, stages, get_policy("softmax"), [0.9, 0.9])
    # rows 0 and 2 are unsure at every stage, so they end at stage 2
    assert res.route.tolist() == [2, 0, 2]
    assert calls == [[0, 1, 2], [0, 2], [0, 2]]


def test_cascade_later_stage_failure_marks_only_its_rows():
    swift = np.array([[0.0, 0.0], [9.0, 0.0]], dtype=np.float32)

    def broken(rows):
        raise RuntimeError("super is down")

    res = run_cascade(2, [lambda r: swift[r], broken], get_policy("energy"), [-1.0])
    assert res.route.tolist() == [-1, 0]
    assert res.failed.tolist() == [True, False]
    assert "super is down" in res.failures[0].message and res.failures[0].rows.tolist() == [0]


def test_cascade_first_stage_failure_raises():
    def broken(rows):
        raise RuntimeError("swift is down")

    with pytest.raises(StageError, match="swift is down"):
        run_cascade(2, [broken, broken], get_policy("energy"), [0.0])


def test_cascade_refuses_wrong_shapes():
    res = run_cascade(
        2, [lambda r: np.zeros((len(r), 3)), lambda r: np.zeros((len(r), 4))], get_policy("energy"), [-np.inf]
    )
    assert "labels" in res.failures[0].message
    with pytest.raises(ValueError, match="thresholds"):
        run_cascade(2, [lambda r: np.zeros((len(r), 3))] * 2, get_policy("energy"), [])
