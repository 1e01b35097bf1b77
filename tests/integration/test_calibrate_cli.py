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
    assert record["criterion"] in ("energy", "softmax", "entropy", "learned") and record["schema"] == 2
    assert record["calibration"]["super_fraction"] == pytest.approx(0.25, abs=0.01)
    # 240 rows by 60/10/20/10%: 24 calibration texts, 8 of them fit T and the rule, 16 set the threshold.
    assert record["calibration"]["examples"] == 24 and record["calibration"]["held_out_examples"] == 16
    assert (tmp_path / "cal" / "curve.png").stat().st_size > 10_000
    assert "| criterion | AUROC" in out.stdout and "oracle routing" in out.stdout
    assert "swift on the calibration texts: 0 of 24 texts (0.0%) are longer than max_length" in out.stdout
    assert "routing curve on all 24 calibration texts (fit and held-out parts together" in out.stdout
    assert "Super fraction gap on test" in out.stdout
    assert "calibration 24 (seeded shuffle" in out.stdout
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


def test_an_accuracy_target_is_certified_and_its_coverage_measured(elang_cli, tiny_repo, labelled_csv, tmp_path):
    extra = ("--target-accuracy", "0.0", "--criterion", "energy", "--coverage-sims", "20", "--sizes", "100,40,40,60")
    out = _calibrate(elang_cli, tiny_repo, labelled_csv, tmp_path, *extra)
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert record["confidence"] == 0.9 and "fixed-sequence" in record["calibration"]["guarantee"]
    assert record["calibration"]["coverage"]["simulations"] == 20
    assert "coverage by simulation (20 resampled calibration sets of 40)" in out.stdout


def test_calibrating_on_data_the_models_were_not_trained_on_is_refused(elang_cli, tiny_repo, labelled_csv, tmp_path):
    import shutil

    from elang.data import spec as dataspec

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    other = dataspec.DataSpec(path=str(labelled_csv), fingerprint="0123456789abcdef")
    (repo / dataspec.DATA_FILE).write_text(other.to_json())
    args = ["calibrate", "--repository", repo, "--super-fraction", "0.3", "--out", tmp_path / "o"]
    out = elang_cli(*args, "--data", labelled_csv, "--cache-dir", tmp_path / "c", cwd=tmp_path)
    assert out.returncode == 2 and "--allow-other-data" in out.stderr, out.stderr
    out = elang_cli(*args, "--data", labelled_csv, "--allow-other-data", "--cache-dir", tmp_path / "c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # Without data options the remembered data is used (here: the same file).
    out = elang_cli(*args, "--cache-dir", tmp_path / "c", cwd=tmp_path)
    assert out.returncode == 0 and str(labelled_csv) in out.stdout, out.stderr


def test_a_threshold_that_costs_more_than_the_super_alone_is_refused_unless_forced(
    elang_cli, tiny_repo, labelled_csv, tmp_path
):
    """90% of texts to the Super behind a Swift that costs a good share of a Super: more compute than the
    Super alone. calibrate says so, names what would pay, and refuses to --apply without --force."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    before = (repo / "elang" / "config.pbtxt").read_text()
    args = ("calibrate", "--repository", repo, "--data", labelled_csv, "--allow-other-data", "--super-fraction", "0.9",
            "--cache-dir", tmp_path / "c", "--apply")  # fmt: skip
    out = elang_cli(*args, "--out", tmp_path / "a", cwd=tmp_path)
    assert out.returncode == 4, out.stderr
    assert "cost more than serving the Super alone" in out.stderr and "serve the Super alone" in out.stderr
    assert "not applied" in out.stderr and (repo / "elang" / "config.pbtxt").read_text() == before
    forced = elang_cli(*args, "--force", "--out", tmp_path / "b", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (repo / "elang" / "config.pbtxt").read_text() != before
    record = json.loads((tmp_path / "b" / "calibration.json").read_text())
    assert any("cost more than serving the Super alone" in w for w in record["warnings"])
