"""Atomic writes: a reader sees the old or the new content, never a part; a failed build changes nothing."""

from __future__ import annotations

import threading

import pytest

from elang.core.atomic import replace_dir, write_text


def test_write_text_replaces_whole_files_and_keeps_the_mode(tmp_path):
    path = tmp_path / "config.pbtxt"
    path.write_text("old")
    path.chmod(0o640)
    write_text(path, "new " * 1000)
    assert path.read_text() == "new " * 1000 and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["config.pbtxt"]  # no temporary file left


def test_a_reader_never_sees_a_partial_file(tmp_path):
    path = tmp_path / "calibration.json"
    a, b = "a" * 200_000, "b" * 200_000
    write_text(path, a)
    seen, stop = set(), threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(50):
        write_text(path, b if i % 2 else a)
    stop.set()
    reader.join()
    assert seen <= {a, b}


def test_replace_dir_swaps_whole_folders_and_a_failure_leaves_the_old_one(tmp_path):
    dest = tmp_path / "super"
    replace_dir(dest, lambda d: (d / "model.onnx").write_text("v1"))
    replace_dir(dest, lambda d: (d / "model.onnx").write_text("v2"))
    assert (dest / "model.onnx").read_text() == "v2" and sorted(p.name for p in dest.iterdir()) == ["model.onnx"]

    def broken(d):
        (d / "model.onnx").write_text("half")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        replace_dir(dest, broken)
    assert (dest / "model.onnx").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["super"]  # no staging folder left
