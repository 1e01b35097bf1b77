"""`elang calibrate` end to end on the tiny repository (offline scores)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from elang.export.tiny import sample_rows

ELANG = [sys.executable, "-m", "elang.cli"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    f = tmp_path_factory.mktemp("cal") / "data.csv"
    rows = sample_rows()
    # distinct texts (two sample sentences each), so no two rows tie in score
    body = "".join(
        f'"{t} {rows[(j + 1 + i) % len(rows)][0]}",{lab}\n' for i in range(10) for j, (t, lab) in enumerate(rows)
    )
    f.write_text("text,label\n" + body)
    return f


def _run(args, cwd):
    return subprocess.run(ELANG + args, capture_output=True, text=True, timeout=600, cwd=cwd)


def test_calibrate_super_fraction_writes_record_table_plot(tiny_repo, data, tmp_path):
    out = _run(
        [
            "calibrate",
            "--repository",
            str(tiny_repo["repo"]),
            "--data",
            str(data),
            "--super-fraction",
            "0.25",
            "--criterion",
            "auto",
            "--evaluate-on",
            "test",
            "--out",
            str(tmp_path / "cal"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert record["criterion"] in ("energy", "softmax", "entropy") and record["schema"] == 1
    assert record["validation"]["super_fraction"] == pytest.approx(0.25, abs=0.01)
    assert (tmp_path / "cal" / "curve.png").stat().st_size > 10_000
    assert "| criterion | AUROC" in out.stdout and "oracle routing" in out.stdout
    assert "Super fraction gap on test" in out.stdout
    assert json.loads((tmp_path / "cal" / "evaluation.json").read_text())["examples"] > 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--super-fraction", "1.5"], r"within \[0, 1\]"),
        (["--target-accuracy", "0.999"], "cannot be met"),
        (["--compute-budget", "0.01"], "below the cost of Swift alone"),
        (["--max-accuracy-drop", "-2"], "points"),
    ],
)
def test_bad_targets_are_clear_errors(tiny_repo, data, tmp_path, args, match):
    out = _run(
        [
            "calibrate",
            "--repository",
            str(tiny_repo["repo"]),
            "--data",
            str(data),
            *args,
            "--out",
            str(tmp_path / "cal"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        tmp_path,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error" in out.stderr
    import re

    assert re.search(match, out.stderr), out.stderr
