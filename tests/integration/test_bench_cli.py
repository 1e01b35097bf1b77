"""A short `elang bench` and soak against tiny models: the report's structure, every request answered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration
ELANG = [sys.executable, "-m", "elang.cli"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from elang.export.tiny import sample_rows

    f = tmp_path_factory.mktemp("bench") / "d.csv"
    rows = sample_rows()
    f.write_text(
        "text,label\n"
        + "".join(f'"{t} {rows[(j + i + 1) % 24][0]}",{lab}\n' for i in range(5) for j, (t, lab) in enumerate(rows))
    )
    return f


def test_bench_report(tiny_repo, data, tmp_path):
    out = subprocess.run(
        ELANG
        + [
            "bench",
            "--repository",
            str(tiny_repo["repo"]),
            "--data",
            str(data),
            "--concurrency",
            "1,4",
            "--chunks",
            "2",
            "--sweep",
            "-1.5",
            "--report",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "r" / "bench.json").read_text())
    names = {r["config"] for r in rows}
    assert {"swift", "super", "elang", "elang@+inf", "elang@-1.5"} <= names
    assert {r["concurrency"] for r in rows} == {1, 4}
    for r in rows:
        assert r["sent"] == r["answered"] > 0 and r["failed"] == r["timed_out"] == 0
    md = (tmp_path / "r" / "bench.md").read_text()
    assert "machine:" in md and "ideal bound" in md and "router overhead" in md
    assert (tmp_path / "r" / "bench.png").stat().st_size > 10_000


def test_soak_accounts_for_every_request(tiny_repo, data, tmp_path):
    out = subprocess.run(
        ELANG
        + [
            "bench",
            "--repository",
            str(tiny_repo["repo"]),
            "--data",
            str(data),
            "--soak",
            "4",
            "--soak-concurrency",
            "16",
            "--report",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "s" / "soak.md").read_text()
    row = [line for line in md.splitlines() if line.startswith("| ") and "sent" not in line and "---" not in line][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    sent, answered, failed, timed_out, lost = map(int, cells[:5])
    assert sent == answered > 0 and failed == timed_out == lost == 0
    assert float(cells[8]) > 0  # RSS of the server we started
