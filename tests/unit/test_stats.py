"""Routing statistics."""

import math

import pytest

from elang.client.stats import RoutingStats, percentiles


def test_percentiles_linear():
    p = percentiles([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (50, 95, 99))
    assert p[50] == pytest.approx(5.5)
    assert p[95] == pytest.approx(9.55)
    assert p[99] == pytest.approx(9.91)
    assert math.isnan(percentiles([])[50])


def test_stats_counts_fractions_accuracy():
    s = RoutingStats.compute(
        routes=[0, 0, 1, 0],
        energies=[-3.0, -2.0, -1.0, -2.5],
        latencies_s=[0.010, 0.020, 0.030, 0.040],
        wall_s=2.0,
        correct=[True, False, True, True],
        failed=1,
    )
    assert (s.count, s.answered, s.failed) == (5, 4, 1)
    assert s.super_fraction == pytest.approx(0.25)
    assert s.throughput == pytest.approx(2.0)
    assert s.accuracy == pytest.approx(0.75)
    assert s.per_route[0].accuracy == pytest.approx(2 / 3)
    assert s.per_route[1].count == 1 and s.per_route[1].latency_ms[50] == pytest.approx(30.0)
    assert s.latency_ms[50] == pytest.approx(25.0)
    assert s.energy_quantiles[0.5] == pytest.approx(-2.25)
    table = s.format_table()
    assert "super fraction 25.0%" in table and "swift" in table and "super" in table
    d = s.to_dict()
    assert d["routes"]["super"]["count"] == 1 and d["failed"] == 1


def test_stats_of_nothing():
    s = RoutingStats.compute([], [], [], wall_s=0.0, failed=2)
    assert s.answered == 0 and math.isnan(s.super_fraction)
    assert "2 failed" in s.format_table()


def test_stats_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        RoutingStats.compute([0], [1.0, 2.0], [0.1], 1.0)


def test_failures_are_counted_by_kind():
    s = RoutingStats.compute([0], [-1.0], [0.01], 1.0, failed=3, failures_by_kind={"overloaded": 2, "deadline": 1})
    assert s.to_dict()["failed_by_kind"] == {"overloaded": 2, "deadline": 1}
    assert "3 failed: 1 deadline, 2 overloaded" in s.format_table()


def test_server_messages_are_classified():
    from elang.client.client import classify_failure

    assert classify_failure("[StatusCode.UNAVAILABLE] Exceeds maximum queue size") == "overloaded"
    assert classify_failure("stage 'super' is overloaded: 9 rows already wait") == "overloaded"
    assert classify_failure("stage 'super' gave no answer within stage_timeout_s=2 s") == "deadline"
    assert classify_failure("[StatusCode.DEADLINE_EXCEEDED] Deadline Exceeded") == "deadline"
    assert classify_failure("request cancelled by its client") == "cancelled"
    assert classify_failure("stage 'super' failed: Stub process 'super_0_0' is not healthy.") == "error"
