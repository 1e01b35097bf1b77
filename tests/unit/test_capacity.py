"""The capacity model (elang.ops.capacity) and `elang capacity`."""

from __future__ import annotations

import json

import pytest

from elang.ops.capacity import MeasuredCosts, Prices, plan, read_bench, table


def _bench(tmp_path, rows):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(rows))
    return path


ROWS = [
    {"config": "swift", "concurrency": 8, "throughput": 240.0, "super_fraction": 0.0},
    {"config": "super", "concurrency": 8, "throughput": 40.0, "super_fraction": 1.0},
    {"config": "super_bf16", "concurrency": 8, "throughput": 80.0, "super_fraction": 1.0},
    {"config": "elang", "concurrency": 8, "throughput": 120.0, "super_fraction": 0.2},
    {"config": "elang@no-escalation", "concurrency": 8, "throughput": 200.0, "super_fraction": 0.0},
    {"config": "elang", "concurrency": 1, "throughput": 60.0, "super_fraction": 0.2},
]


def test_read_bench_takes_the_fastest_super_and_the_highest_concurrency(tmp_path):
    costs = read_bench(_bench(tmp_path, ROWS))
    assert (costs.router, costs.super_, costs.super_name, costs.elang) == (200.0, 80.0, "super_bf16", 120.0)
    assert costs.escalation == 0.2 and costs.concurrency == 8
    with pytest.raises(ValueError, match="nothing measured at concurrency 4"):
        read_bench(_bench(tmp_path, ROWS), concurrency=4)
    with pytest.raises(ValueError, match="no elang@no-escalation"):
        read_bench(_bench(tmp_path, ROWS[:4]), concurrency=8)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not an elang bench report"):
        read_bench(tmp_path / "bad.json")


def test_replicas_follow_the_load_and_the_escalation_share():
    costs = MeasuredCosts(router=200.0, super_=80.0, super_name="super_bf16", elang=120.0, escalation=0.2, concurrency=8)
    prices = Prices(utilization=0.5)
    two, one, only = plan(1000.0, costs, prices)
    # 1000 / (0.5 * 200) = 10 router pods; 0.2 * 1000 / (0.5 * 80) = 5 Super pods.
    assert (two.router_replicas, two.super_replicas, two.cost_per_hour) == (10, 5, 15.0)
    assert one.router_replicas == 17  # ceil(1000 / 60)
    assert only.super_replicas == 25 and only.cost_per_hour == 25.0
    # More escalation: more Super pods only; a one-pod replica slows by the Super's share.
    two, one, _ = plan(1000.0, costs, prices, escalation=0.4)
    assert (two.router_replicas, two.super_replicas) == (10, 10)
    assert costs.elang_at(0.4) == pytest.approx(1 / (1 / 120 + 0.2 / 80))
    assert costs.elang_at(0.2) == pytest.approx(120.0)
    # Idle: one pod of each pool stays, or none of the Super with scale-to-zero.
    assert [(x.router_replicas, x.super_replicas) for x in plan(0.0, costs, prices)][0] == (1, 1)
    assert plan(0.0, costs, Prices(min_super=0))[0].super_replicas == 0


def test_the_super_on_other_hardware_changes_its_pool_only():
    costs = MeasuredCosts(router=200.0, super_=80.0, super_name="super", elang=120.0, escalation=0.2, concurrency=8)
    gpu = Prices(super_=5.0, super_throughput=800.0, utilization=1.0)
    two, one, only = plan(2000.0, costs, gpu)
    assert (two.router_replicas, two.super_replicas, two.cost_per_hour) == (10, 1, 15.0)
    assert one.router_replicas == 17 and one.cost_per_hour == 17.0  # one pod stays on the router's hardware
    assert (only.super_replicas, only.cost_per_hour) == (3, 15.0)
    assert "| 2000 | 10 + 1 | 15.00 |" in table([2000.0], costs, gpu)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"utilization": 0}, "utilization"), ({"min_super": -1}, "min Super"), ({"super_throughput": 0}, "Super throughput")]
)
def test_bad_prices_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Prices(**kwargs)


def test_capacity_command(tmp_path, capsys):
    from elang.cli import main

    bench = _bench(tmp_path, ROWS)
    assert main(["capacity", str(bench), "--load", "100,1000"]) == 0
    out = capsys.readouterr().out
    assert "super_bf16 80.0 texts/s" in out and "| 1000 | 8 + 4 |" in out
    assert main(["capacity", str(bench), "--escalation", "1.5"]) == 2
    assert "escalation share must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.export  # matplotlib comes with the export extra
def test_capacity_plot(tmp_path, capsys):
    from elang.cli import main

    assert main(["capacity", str(_bench(tmp_path, ROWS)), "--plot", str(tmp_path / "cap.png")]) == 0
    assert (tmp_path / "cap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"written: {tmp_path / 'cap.png'}" in capsys.readouterr().out
