"""Benchmark statistics: the ideal bound, aggregation and the report's ratios."""

from __future__ import annotations

import math

import pytest

from elang.bench import LoadResult, bench_markdown, ideal_speedup, rss_slope_mb_per_min


def test_ideal_speedup():
    assert ideal_speedup(0.155, 0.15) == pytest.approx(1 / 0.305)
    assert ideal_speedup(0.0, 1.0) == 1.0
    with pytest.raises(ValueError):
        ideal_speedup(0.1, 1.5)


def _r(name, conc, n, wall, routes=None, correct=None, lat=0.01):
    return LoadResult(
        name,
        conc,
        sent=n,
        answered=n,
        wall_s=wall,
        latencies_s=[lat] * n,
        routes=routes if routes is not None else [0] * n,
        correct=correct if correct is not None else [True] * n,
    )


def test_merge_and_rates():
    a = _r("elang", 8, 10, 1.0, routes=[1] * 5 + [0] * 5, correct=[True] * 10)
    b = _r("elang", 8, 10, 1.0, routes=[0] * 10, correct=[False] * 10)
    a.merge(b)
    assert (a.sent, a.answered, a.wall_s) == (20, 20, 2.0)
    assert a.throughput == pytest.approx(10.0)
    assert a.super_fraction == pytest.approx(0.25) and a.accuracy == pytest.approx(0.5)
    assert math.isnan(LoadResult("x", 1).throughput)


def test_report_ratios():
    results = {
        ("swift", 8): _r("swift", 8, 100, 1.0, lat=0.010),  # 100/s
        ("super", 8): _r("super", 8, 100, 10.0, routes=[1] * 100, lat=0.100),  # 10/s
        ("elang", 8): _r("elang", 8, 100, 3.0, routes=[1] * 20 + [0] * 80),  # 33.3/s, f = 0.2
        ("elang@no-escalation", 8): _r("elang@no-escalation", 8, 100, 1.1, lat=0.011),
    }
    table, summary = bench_markdown(results, (8,))
    assert "| 8 | elang | 33.3 |" in table and "3.33x" in table
    # c_swift / c_super = 10 / 100 = 0.1; bound = 1 / (0.1 + 0.2) = 3.33x; measured 3.33x -> 100%
    assert any("ideal bound 1/(0.100 + 0.200) = 3.33x; measured/ideal 100%" in s for s in summary)
    assert any("router overhead" in s and "+10.0%" in s for s in summary)
    assert not any("headline" in s for s in summary)  # one Super-only variant: the fp32 line says it
    assert not any("load generator" in s for s in summary)  # not measured: not claimed


def test_the_load_generators_own_cpu_is_reported_per_text_and_as_a_share_of_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    r = _r("swift", 8, 100, 1.0)
    r.client_cpu_s = 0.25  # 2.5 ms per text; 0.25 s of 2 cores x 1 s
    assert r.client_cpu_share == pytest.approx(0.125)
    other = _r("swift", 8, 100, 1.0)
    other.client_cpu_s = 0.25
    r.merge(other)
    assert r.client_cpu_s == pytest.approx(0.5) and r.client_cpu_share == pytest.approx(0.125)
    _, summary = bench_markdown({("swift", 8): r}, (8,))
    assert any("load generator" in s and "swift 2.50 ms/text (12%)" in s for s in summary)


def test_the_headline_is_against_the_fastest_super_only_variant_at_equal_accuracy():
    ok, sure = [True] * 100, [True] * 99 + [False]
    results = {
        ("swift", 8): _r("swift", 8, 100, 1.0, correct=[True] * 80 + [False] * 20),
        ("super", 8): _r("super", 8, 100, 10.0, routes=[1] * 100, correct=ok),  # 10/s, 100%
        ("super_int8", 8): _r("super_int8", 8, 100, 5.0, routes=[1] * 100, correct=sure),  # 20/s, 99%
        ("elang", 8): _r("elang", 8, 100, 2.5, routes=[1] * 20 + [0] * 80, correct=sure),  # 40/s, 99%: -1 pt
        ("elang_super_int8", 8): _r("elang_super_int8", 8, 100, 4.0, correct=[True] * 100),  # 25/s, 100%
    }
    table, summary = bench_markdown(results, (8,))
    (line,) = [s for s in summary if "headline" in s]
    # elang is faster but 1 pt below the fp32 Super; elang_super_int8 is at its accuracy: 25/20
    assert "elang_super_int8 1.25x the fastest Super-only (super_int8, 20.0 texts/s" in line
    assert "2.50x the fp32 Super" in line
    assert "| 8 | elang | 40.0 |" in table and "| 4.00x | 2.00x |" in table  # both ratios in the table
    results.pop(("elang_super_int8", 8))
    (line,) = [s for s in bench_markdown(results, (8,))[1] if "headline" in s]
    assert "no cascade is within 0.5 pt" in line and "super_int8" in line


def test_rss_trend_ignores_warm_up_and_sees_a_leak():
    warm_then_flat = [(0, 1000.0), (60, 1300.0), (120, 1350.0), (180, 1350.0), (240, 1351.0), (300, 1350.0)]
    assert abs(rss_slope_mb_per_min(warm_then_flat)) < 1.0
    leak = [(60.0 * i, 1000.0 + 5.0 * i) for i in range(10)]  # 5 MB per minute
    assert rss_slope_mb_per_min(leak) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="at least 4"):
        rss_slope_mb_per_min([(0, 1.0), (1, 2.0)])


def test_router_profile_from_metrics_text():
    from elang.bench import profile_markdown, router_profile

    text = "\n".join(
        [
            "# HELP elang_router_executions_total Dynamic batches executed by the router",
            'elang_router_executions_total{model="elang"} 4',
            'elang_router_duration_us_total{model="elang"} 40000',
            'elang_stage_calls_total{model="elang",stage="super"} 2',
            'elang_stage_rows_total{model="elang",stage="super"} 6',
            'elang_stage_duration_us_total{model="elang",stage="super"} 26000',
            'elang_stage_calls_total{model="elang",stage="swift"} 4',
            'elang_stage_rows_total{model="elang",stage="swift"} 40',
            'elang_stage_duration_us_total{model="elang",stage="swift"} 10000',
            'elang_router_executions_total{model="elang_x"} 0',
            'nv_inference_count{model="elang"} 9',
        ]
    )
    prof = router_profile(text)
    assert set(prof) == {"elang"}  # a router that never ran has no profile
    p = prof["elang"]
    assert p["executions"] == 4 and p["ms_per_execute"] == pytest.approx(10.0)
    assert p["first_stage_share"] == pytest.approx(0.25) and p["own_share"] == pytest.approx(0.75)
    assert p["stages"]["super"] == {"calls": 2, "rows_per_call": 3.0, "ms_per_call": pytest.approx(13.0)}
    md = profile_markdown(prof)
    assert (
        "| elang | 4 | 10.00 | 25.0% | 75.0% | super 2: 3.0, 13.00; swift 4: 10.0, 2.50 |" in md
    )  # super listed first
