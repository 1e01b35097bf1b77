"""Router metrics logic with a small stand-in for triton_python_backend_utils' metric API."""

from __future__ import annotations

import numpy as np
import pytest

from elang.core.settings import RouterSettings, SlidingFraction
from elang.triton.metrics import RouterMetrics, energy_buckets


class _Metric:
    def __init__(self, labels, buckets=None):
        self.labels, self.buckets, self.value, self.observed, self.calls = labels, buckets, 0.0, [], 0

    def increment(self, v):
        self.calls += 1
        self.value += v

    def set(self, v):
        self.value = v

    def observe(self, v):
        self.observed.append(v)


class _Family:
    COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

    def __init__(self, name, description, kind):
        self.name, self.kind, self.metrics = name, kind, []

    def Metric(self, labels, buckets=None):  # noqa: N802 - the pb_utils spelling
        m = _Metric(labels, buckets)
        self.metrics.append(m)
        return m


class _Logger:
    warnings: list[str] = []

    @classmethod
    def log_warn(cls, msg):
        cls.warnings.append(msg)


class _PbUtils:
    MetricFamily = _Family
    Logger = _Logger


def test_sliding_fraction_window():
    w = SlidingFraction(4)
    assert w.value == 0.0
    assert w.add(np.array([1, 0])) == pytest.approx(0.5)
    assert w.add(np.array([1, 1, 1])) == pytest.approx(0.75)  # window: [0, 1, 1, 1]
    assert w.add(np.zeros(10)) == 0.0
    with pytest.raises(ValueError):
        SlidingFraction(0)


class _Executor:
    def __init__(self):
        self.snap = {"swift": {"queued_rows": 0, "inflight": 0, "calls": 0, "abandoned": 0}}
        self.snap["super"] = {"queued_rows": 7, "inflight": 2, "calls": 5, "abandoned": 1}

    def snapshot(self):
        return self.snap


def test_router_metrics_counts():
    s = RouterSettings.from_parameters(
        {"threshold": "-1", "calibration_version": "cal-x", "window_rows": "10", "metrics_interval_s": "0.2"}
    )
    m = RouterMetrics(_PbUtils, "elang", s)
    ex = _Executor()
    m.watch(ex)
    m.answered(np.array([0, 1, 1]), np.array([-3.0, -1.0, -0.5]))
    m.answered(np.array([0]), np.array([-2.0]))
    m.failed(4, "super", "deadline")  # a failed request's rows: none counted as answered
    m.request("invalid")
    m.stage_call("super", 0.002, 3)
    m.timing(0.001)
    m.flush()  # updates are sent by a background thread, gathered over metrics_interval_s
    assert m.rows["swift"].value == 2 and m.rows["super"].value == 2
    assert m.failed_rows[("super", "deadline")].value == 4 and m.failed_rows[("swift", "deadline")].value == 0
    assert m.energy.observed == [-3.0, -1.0, -0.5, -2.0]
    assert m.fraction.value == pytest.approx(2 / 4)
    assert m.requests["ok"].value == 2 and m.requests["invalid"].value == 1 and m.requests["deadline"].value == 1
    assert m.requests["ok"].calls == 1  # two requests, one message to the server
    assert m.stage["calls"]["super"].value == 1 and m.stage["rows"]["super"].value == 3
    assert m.stage["us"]["super"].value == pytest.approx(2000)
    assert m.executions.value == 1 and m.duration.value == pytest.approx(1000)
    assert m.gauges["queued_rows"]["super"].value == 7 and m.gauges["inflight"]["super"].value == 2
    assert m.abandoned["super"].value == 1
    assert m.info.value == 1.0 and m.info.labels["calibration_version"] == "cal-x"
    assert m.energy.buckets == list(range(-12, 3))
    ex.snap["super"]["abandoned"] = 3
    m.answered(np.array([0, 0]), np.array([-5.0, -6.0]))
    m.close()  # sends what is queued
    assert not m._thread.is_alive()
    assert m.rows["swift"].value == 4 and m.energy.observed[-2:] == [-5.0, -6.0]
    assert m.abandoned["super"].value == 3  # counters follow the executor's totals


def test_a_failing_metric_update_is_logged_and_the_rest_still_sent():
    m = RouterMetrics(_PbUtils, "elang", RouterSettings.from_parameters({"metrics_interval_s": "0.01"}))

    def broken(v):
        raise RuntimeError("metric backend gone")

    m.requests["error"].increment = broken
    m.failed(1, "super", "error")
    m.request("invalid")
    m.flush()
    assert m.requests["invalid"].value == 1 and m.failed_rows[("super", "error")].value == 1
    assert any("metric backend gone" in w for w in _Logger.warnings)
    m.close()


def test_energy_buckets_parameter():
    s = RouterSettings.from_parameters({"energy_buckets": "0,-2,-1"})
    assert energy_buckets(s) == [-2.0, -1.0, 0.0]
    with pytest.raises(ValueError, match="energy_buckets"):
        energy_buckets(RouterSettings.from_parameters({"energy_buckets": "a,b"}))
