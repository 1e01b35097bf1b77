"""`elang pairs`: Swift candidates against one Super, offline, on the tiny models."""

from __future__ import annotations

import json
import shutil

import pytest


def test_pairs_compares_candidates_and_recommends_one(elang_cli, tiny_repo, labelled_csv, tmp_path):
    repo = tiny_repo["repo"]
    # A candidate whose Swift is the Super itself: its answers are the Super's, so the target is met
    # with nothing escalated, and a recommendation must exist.
    big = tmp_path / "big"
    big.mkdir()
    shutil.copytree(repo / "super", big / "swift")
    out = elang_cli(
        "pairs", "--repository", repo, "--candidate", f"tiny={repo}", "--candidate", f"super-as-swift={big}",
        "--data", labelled_csv, "--max-accuracy-drop", "5",
        "--out", tmp_path / "p", "--cache-dir", tmp_path / "c", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "p" / "pairs.json").read_text())
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"tiny", "super-as-swift"}
    # (tiny models cost microseconds: their ratio is noise, so only its presence is checked)
    assert all(r["cost_ratio"] > 0 and r["cost_ms"] > 0 for r in rows.values())
    for r in rows.values():
        assert r["error"] or (set(r["auroc"]) == {"energy", "softmax", "entropy", "learned"} and r["speedup"] > 0)
    assert "| Swift | Swift acc (test)" in out.stdout
    same = rows["super-as-swift"]
    assert not same["error"] and same["super_fraction"] == 0.0, same
    assert same["speedup"] == pytest.approx(1 / same["cost_ratio"])
    assert report["best"] in rows and f"recommended Swift: {report['best']}" in out.stdout


def test_a_candidate_without_a_swift_stage_is_a_clear_error(elang_cli, tiny_repo, tmp_path):
    out = elang_cli("pairs", "--repository", tiny_repo["repo"], "--candidate", f"x={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2 and "holds no exported swift stage" in out.stderr, out.stderr


def test_pairs_measures_against_the_super_named_by_super(elang_cli, tiny_repo, labelled_csv, tmp_path):
    """--super names the Super of every comparison: a Super that is the candidate's own Swift
    agrees with it everywhere, so nothing needs to go up (the repository's `super` would differ)."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    shutil.copytree(repo / "swift", repo / "super_same")
    out = elang_cli(
        "pairs", "--repository", repo, "--super", "super_same", "--candidate", f"tiny={repo}",
        "--data", labelled_csv, "--max-accuracy-drop", "5", "--out", tmp_path / "p", "--cache-dir", tmp_path / "c",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (row,) = json.loads((tmp_path / "p" / "pairs.json").read_text())["results"]
    assert not row["error"] and row["super_fraction"] == 0.0, row
