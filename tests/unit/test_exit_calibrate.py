"""Calibration of a multi-exit router on synthetic exits whose accuracy grows with depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elang.calibration.exits import ExitRouter, calibrate_exits, evaluate_exit_record, replay
from elang.calibration.thresholds import TargetError
from elang.core.routing import cascade_offline, get_policy

LAYERS = (2, 4, 8)


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    hard = rng.random(n)  # per text: how hard it is for every exit
    z = np.zeros((n, 3, 3))
    for e, strength in enumerate((1.0, 2.0, 4.0)):
        z[:, e] = rng.normal(size=(n, 3))
        z[np.arange(n), e, labels] += strength * (1.2 - hard)
    return z.astype(np.float32), labels


ROUTER = ExitRouter("elang_exits", ("e2", "e4", "e8"), LAYERS, 8, (Path("."),) * 3, 64)


def test_an_accuracy_drop_target_holds_on_fresh_data_and_saves_layers():
    z, y = _data()
    rec = calibrate_exits(ROUTER, z, y, "softmax", "accuracy_drop", 1.0, 0.9, "synthetic")
    v = rec.calibration
    assert v["mean_exit_layer"] < 8 and v["accuracy"] >= v["last_exit_accuracy"] - 0.01
    fresh_z, fresh_y = _data(seed=1)
    res = evaluate_exit_record(rec, fresh_z, fresh_y, 8)
    assert res["accuracy"] >= res["last_exit_accuracy"] - 0.015  # the guarantee, with sampling slack
    assert res["mean_exit_layer"] < 7.5
    # The margin costs layers: the point estimate exits earlier (or as early).
    assert v["point_estimate"]["mean_exit_layer"] <= v["mean_exit_layer"] + 1e-9
    assert sum(e["rows"] for e in v["per_exit"]) == v["held_out_examples"]


def test_a_loose_target_sends_everything_to_the_first_exit_and_zero_drop_keeps_the_last_exit_quality():
    z, y = _data()
    rec = calibrate_exits(ROUTER, z, y, "entropy", "accuracy_drop", 100.0, 0.9, "synthetic")
    assert rec.calibration["mean_exit_layer"] == 2.0
    rec0 = calibrate_exits(ROUTER, z, y, "entropy", "accuracy_drop", 0.0, None, "synthetic")
    assert rec0.calibration["accuracy"] >= rec0.calibration["last_exit_accuracy"]


@pytest.mark.parametrize("policy", ["softmax", "energy", "patience"])
def test_a_mean_exit_layer_budget_is_met_with_the_most_accurate_threshold(policy):
    z, y = _data()
    rec = calibrate_exits(ROUTER, z, y, policy, "mean_exit_layer", 4.0, 0.9, "synthetic")
    assert rec.calibration["mean_exit_layer"] <= 4.0
    chosen = [c for c in rec.candidates if c["chosen"]][0]
    cheaper_ok = [c for c in rec.candidates if c["mean_exit_layer"] <= 3.9]
    assert all(c["accuracy"] <= chosen["accuracy"] + 1e-9 for c in cheaper_ok)


def test_a_budget_share_and_the_replay_agree_with_the_router_decisions():
    z, y = _data()
    rec = calibrate_exits(ROUTER, z, y, "softmax", "compute_budget", 0.5, 0.9, "synthetic")
    assert rec.calibration["layer_share"] <= 0.5
    ok, route = replay(z, y, get_policy("softmax"), np.array([rec.threshold]), rec.temperatures)
    r, out, _ = cascade_offline(z, get_policy("softmax"), rec.threshold, rec.temperatures)
    np.testing.assert_array_equal(route[0], r)
    np.testing.assert_array_equal(ok[0], out.argmax(1) == y)


def test_impossible_targets_and_wrong_criteria_are_refused_by_name():
    z, y = _data(n=600)
    with pytest.raises(TargetError, match="no threshold meets"):
        calibrate_exits(ROUTER, z, y, "softmax", "accuracy", 0.99, 0.9, "synthetic")
    with pytest.raises(TargetError, match="below the first exit"):
        calibrate_exits(ROUTER, z, y, "softmax", "mean_exit_layer", 1.0, 0.9, "synthetic")
    with pytest.raises(TargetError, match="unknown exit policy"):
        calibrate_exits(ROUTER, z, y, "learned", "accuracy_drop", 1.0, 0.9, "synthetic")
