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


def test_the_int8_openvino_ir_is_part_of_a_stage_and_precisions_are_checked(tmp_path):
    """An int8 stage is its IR as much as its ONNX: both are fingerprinted; int8 needs OpenVINO
    and the IR file, each refusal naming what is missing."""
    import pytest

    from elang.repository.fingerprint import stage_fingerprint
    from elang.runtimes.openvino import INT8_FILES, check_engine, model_file

    v = tmp_path / "super" / "1"
    v.mkdir(parents=True)
    (v / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(FileNotFoundError, match="model.int8.xml not found"):
        model_file(v / "model.onnx", "int8")
    assert model_file(v / "model.onnx", "bf16") == v / "model.onnx"
    before = stage_fingerprint(tmp_path, "super")
    for name in INT8_FILES:
        (v / name).write_bytes(b"ir")
    assert model_file(v / "model.onnx", "int8") == v / "model.int8.xml"
    with_ir = stage_fingerprint(tmp_path, "super")
    (v / "model.int8.bin").write_bytes(b"other weights")
    assert len({before, with_ir, stage_fingerprint(tmp_path, "super")}) == 3
    check_engine("openvino", "int8")
    with pytest.raises(ValueError, match="precision int8 needs engine openvino"):
        check_engine("onnxruntime", "int8")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, int8"):
        check_engine("openvino", "int4")
