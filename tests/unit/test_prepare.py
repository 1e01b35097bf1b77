"""`python3 -m elang.ops.prepare`, the chart's init container: copy, tune, build engines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from elang.ops import prepare
from elang.repository.writer import parse_config


@pytest.fixture()
def shipped(tiny_repo: dict, tmp_path: Path) -> Path:
    src = tmp_path / "shipped"
    shutil.copytree(tiny_repo["repo"], src)
    return src


def _queue(repo: Path, name: str):
    return parse_config((repo / name / "config.pbtxt").read_text()).dynamic_batching.default_queue_policy


def test_copies_and_tunes_without_touching_the_source(shipped: Path, tmp_path: Path, capsys) -> None:
    before = {p: p.read_text() for p in shipped.glob("*/config.pbtxt")}
    dest = tmp_path / "prepared" / "repository"
    rc = prepare.main(["--source", str(shipped), "--dest", str(dest), "--max-queue-size=7", "--queue-timeout-s=2"])
    assert rc == 0, capsys.readouterr().err
    assert {p: p.read_text() for p in shipped.glob("*/config.pbtxt")} == before
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in shipped.iterdir())
    for name in ("swift", "super"):
        policy = _queue(dest, name)
        assert policy.max_queue_size == 7 and policy.default_timeout_microseconds == 2_000_000
    assert "tuned:" in capsys.readouterr().out
    # Run again (a restarted pod): the old copy is replaced, not merged.
    (dest / "stale").mkdir()
    assert prepare.main(["--source", str(shipped), "--dest", str(dest)]) == 0
    assert not (dest / "stale").exists() and _queue(dest, "swift").max_queue_size != 7


def test_refuses_what_is_not_a_repository_and_bad_knobs(shipped: Path, tmp_path: Path, capsys) -> None:
    assert prepare.main(["--source", str(tmp_path / "nothing"), "--dest", str(tmp_path / "d")]) == 1
    assert "is not a model repository" in capsys.readouterr().err
    assert prepare.main(["--source", str(shipped), "--dest", str(tmp_path / "d"), "--stage-inflight=0"]) == 1
    assert "stage inflight must be >= 1" in capsys.readouterr().err


def test_engines_need_trtexec_and_say_where_they_looked(shipped: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("TRTEXEC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    if any(Path(p).exists() for p in prepare.TRTEXEC_PATHS):
        pytest.fail("this machine has trtexec: the test expects a CPU machine without TensorRT")
    assert prepare.main(["--source", str(shipped), "--dest", str(tmp_path / "d"), "--build-engines"]) == 1
    err = capsys.readouterr().err
    assert "/usr/src/tensorrt/bin/trtexec" in err
    # A repository without engine scripts (not exported for tensorrt) is named as such.
    monkeypatch.setenv("TRTEXEC", "/bin/true")
    assert prepare.main(["--source", str(shipped), "--dest", str(tmp_path / "d"), "--build-engines"]) == 1
    assert "no build_engine.sh" in capsys.readouterr().err
