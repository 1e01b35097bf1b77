"""Stage fingerprints: model files count, configs and engines built later do not."""

from __future__ import annotations

from pathlib import Path

from elang.repository.fingerprint import stage_fingerprint, stage_hashes, stale_stages


def _stage(repo: Path, name: str, weights: bytes) -> None:
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text('name: "x"')
    (repo / name / "1" / "model.onnx").write_bytes(weights)
    (repo / name / "1" / "tokenizer.json").write_text("{}")
    (repo / name / "1" / "model.py").write_text("# adapter")


def test_model_files_count_and_tuning_does_not(tmp_path: Path) -> None:
    _stage(tmp_path, "swift", b"a")
    _stage(tmp_path, "super", b"b")
    recorded = stage_hashes(tmp_path, ["swift", "super"])
    assert stale_stages(tmp_path, recorded) == []
    (tmp_path / "swift" / "config.pbtxt").write_text('name: "x" max_batch_size: 8')  # elang tune
    (tmp_path / "super" / "1" / "model.plan").write_bytes(b"engine")  # built on the GPU later
    (tmp_path / "super" / "1" / "model.py").write_text("# newer adapter")
    assert stale_stages(tmp_path, recorded) == []
    (tmp_path / "swift" / "1" / "model.onnx").write_bytes(b"c")  # re-exported
    assert stale_stages(tmp_path, recorded) == ["swift"]
    (tmp_path / "super_onnx" / "1").mkdir(parents=True)  # a native runtime's ONNX folder counts too
    (tmp_path / "super_onnx" / "1" / "model.onnx").write_bytes(b"d")
    assert stale_stages(tmp_path, recorded) == ["swift", "super"]
    assert stage_fingerprint(tmp_path, "gone") == "missing"
    assert stale_stages(tmp_path, "") == []
