"""`elang calibrate` end to end on the tiny repository (offline scores)."""

from __future__ import annotations

import json
import re

import pytest


def _calibrate(elang_cli, tiny_repo, data, tmp_path, *extra):
    return elang_cli(
        "calibrate", "--repository", tiny_repo["repo"], "--data", data, "--out", tmp_path / "cal",
        "--cache-dir", tmp_path / "c", *extra, cwd=tmp_path,
    )  # fmt: skip


def test_calibrate_super_fraction_writes_record_table_plot(elang_cli, tiny_repo, labelled_csv, tmp_path):
    extra = ("--super-fraction", "0.25", "--criterion", "auto", "--evaluate-on", "test")
    out = _calibrate(elang_cli, tiny_repo, labelled_csv, tmp_path, *extra)
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
def test_bad_targets_are_clear_errors(elang_cli, tiny_repo, labelled_csv, tmp_path, args, match):
    out = _calibrate(elang_cli, tiny_repo, labelled_csv, tmp_path, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error" in out.stderr and re.search(match, out.stderr), out.stderr
