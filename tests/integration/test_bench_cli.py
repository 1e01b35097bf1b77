"""A short `elang bench` and soak against tiny models: the report's structure, every request answered."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def _bench(elang_cli, tiny_repo, data, report, *extra):
    return elang_cli("bench", "--repository", tiny_repo["repo"], "--data", data, "--report", report, *extra)


def test_bench_report(elang_cli, tiny_repo, labelled_csv, tmp_path):
    r = tmp_path / "r"
    out = _bench(elang_cli, tiny_repo, labelled_csv, r, "--concurrency", "1,4", "--chunks", "2", "--sweep", "-1.5")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((r / "bench.json").read_text())
    assert {"swift", "super", "elang", "elang@no-escalation", "elang@-1.5"} <= {row["config"] for row in rows}
    assert {row["concurrency"] for row in rows} == {1, 4}
    for row in rows:
        assert row["sent"] == row["answered"] > 0 and row["failed"] == row["timed_out"] == 0
    md = (r / "bench.md").read_text()
    assert "machine:" in md and "ideal bound" in md and "router overhead" in md
    assert (r / "bench.png").stat().st_size > 10_000
    # Where the router's time went, from the server's own counters.
    assert "where the routers' time went" in md
    prof = json.loads((r / "router_profile.json").read_text())["elang"]
    assert prof["executions"] > 0 and prof["ms_per_execute"] > 0
    assert 0 < prof["first_stage_share"] < 1 and prof["own_share"] == pytest.approx(1 - prof["first_stage_share"])
    assert prof["stages"]["swift"]["calls"] > 0 and prof["stages"]["super"]["calls"] > 0  # -1.5 escalates some
    assert prof["stages"]["super"]["ms_per_call"] > 0 and prof["stages"]["super"]["rows_per_call"] >= 1


def test_soak_accounts_for_every_request(elang_cli, tiny_repo, labelled_csv, tmp_path):
    out = _bench(elang_cli, tiny_repo, labelled_csv, tmp_path / "s", "--soak", "4", "--soak-concurrency", "16")
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "s" / "soak.md").read_text()
    row = [line for line in md.splitlines() if line.startswith("| ") and "sent" not in line and "---" not in line][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    sent, answered, failed, timed_out, lost = map(int, cells[:5])
    assert sent == answered > 0 and failed == timed_out == lost == 0
    assert float(cells[8]) > 0  # RSS of the server we started
