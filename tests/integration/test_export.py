"""`elang export`: ONNX parity, quantization, runtimes and errors, on tiny checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from elang.data.datasets import make_splits
from elang.export.classify.stage import export_stage
from elang.export.classify.tiny import TINY_SUPER, TINY_SWIFT, make_tiny_checkpoint, sample_rows
from elang.repository.writer import RepositoryError, model_names, parse_config

ELANG = [sys.executable, "-m", "elang.cli"]
SAMPLE = [t for t, _ in sample_rows()]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {
        "swift": make_tiny_checkpoint(root / "swift", TINY_SWIFT),
        "super": make_tiny_checkpoint(root / "super", TINY_SUPER),
    }


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "pairs.csv"
    rows = sample_rows()
    lines = ["premise,hypothesis,label"]
    for i in range(120):
        a, lab = rows[i % len(rows)]
        b = rows[(i * 7 + 3) % len(rows)][0]
        lines.append(f'"{a}","{b}",{lab}')
    f.write_text("\n".join(lines) + "\n")
    return f


def test_cli_export_prints_parity_and_writes_a_servable_stage(checkpoints, tmp_path):
    repo = tmp_path / "repo"
    out = subprocess.run(
        ELANG + ["export", str(checkpoints["swift"]), "--as", "swift", "--repository", str(repo), "--max-length", "64"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "max |logit diff|" in out.stdout
    diff = float(out.stdout.split("max |logit diff| = ")[1].split()[0])
    assert diff <= 1e-4
    assert set(model_names(repo)) == {"swift", "elang"}  # the first export also writes the router


def test_two_text_columns_parity(checkpoints, pair_data, tmp_path):
    splits = make_splits(pair_data, text_columns=("premise", "hypothesis"), sizes=(60, 30, 30))
    report = export_stage(checkpoints["super"], "super", tmp_path / "repo", splits=splits, max_length=64)
    assert report.parity_texts == 30
    assert report.parity_max_abs_diff <= 1e-4


def test_int8_quantized_export_within_tolerance(checkpoints, tmp_path):
    splits = make_splits(_labelled_csv(tmp_path), sizes=(40, 60, 20))
    report = export_stage(checkpoints["super"], "super", tmp_path / "repo", splits=splits, quantize="int8")
    (t,) = report.transforms
    assert t["texts"] == 60
    # Stated tolerance for int8 on the tiny random model: 85% argmax agreement, and no logit off by
    # more than 25% of the largest fp32 logit (random tiny weights vary between fresh builds).
    assert t["argmax_agreement"] >= 0.85
    assert t["max_abs_diff"] <= 0.25 * t["logit_scale"]
    assert t["accuracy_fp32"] is not None and t["fp32_nodes"] == TINY_SUPER.layers
    assert any("int8" in line and "accuracy" in line for line in report.lines())


def test_int8_static_export_is_qdq_calibrated_on_the_calibration_split_within_tolerance(
    checkpoints, tmp_path, monkeypatch
):
    import onnx

    from elang.repository.writer import parse_config

    splits = make_splits(_labelled_csv(tmp_path), sizes=(30, 60, 10, 20))
    assert splits.calibration is not None and len(splits.calibration.texts) == 20
    repo = tmp_path / "repo"
    here = tmp_path / "where-the-user-stands"
    here.mkdir()
    monkeypatch.chdir(here)
    report = export_stage(checkpoints["super"], "super", repo, splits=splits, quantize="int8-static")
    assert list(here.iterdir()) == []  # the quantizer's scratch files stayed in its scratch folder
    (t,) = report.transforms
    assert t["name"].startswith("int8 static QDQ (minmax, 20 texts)")  # the calibration split's texts
    # The same stated tolerance as the dynamic int8 export (tiny random weights)
    assert t["texts"] == 60 and t["argmax_agreement"] >= 0.85
    assert t["max_abs_diff"] <= 0.25 * t["logit_scale"] and t["fp32_nodes"] == TINY_SUPER.layers
    graph = onnx.load(str(repo / "super" / "1" / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: activations quantized with fixed ranges
    assert "DynamicQuantizeLinear" not in ops
    assert parse_config((repo / "super" / "config.pbtxt").read_text()).name == "super"
    with pytest.raises(RepositoryError, match="choose one of int8, int8-static"):
        export_stage(checkpoints["super"], "super", repo, splits=splits, quantize="int4")


def test_the_native_openvino_runtime_writes_the_ngc_backend_config_at_bf16(checkpoints, tmp_path):
    repo = tmp_path / "repo"
    report = export_stage(
        checkpoints["swift"], "swift", repo, sample_texts=SAMPLE, runtime="openvino", serving={"precision": "bf16"}
    )
    assert report.transforms[-1]["name"] == "engine openvino bf16"  # what the backend will run, compared
    assert {"swift", "swift_tokenizer", "swift_onnx", "elang"} <= set(model_names(repo))
    cfg = parse_config((repo / "swift_onnx" / "config.pbtxt").read_text())
    assert (cfg.backend, cfg.platform, cfg.default_model_filename) == ("openvino", "", "model.onnx")
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16"}
    assert (repo / "swift_onnx" / "1" / "model.onnx").is_file()
    assert {t.name for t in cfg.input} <= {"input_ids", "attention_mask", "token_type_ids"}


@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_native_runtimes_write_parseable_configs(checkpoints, tmp_path, runtime):
    repo = tmp_path / "repo"
    export_stage(checkpoints["swift"], "swift", repo, sample_texts=SAMPLE, runtime=runtime, gpu=True)
    names = set(model_names(repo))
    assert {"swift", "swift_tokenizer", "swift_onnx", "elang"} <= names
    cfg = parse_config((repo / "swift_onnx" / "config.pbtxt").read_text())
    assert cfg.platform == {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}[runtime]
    if runtime == "tensorrt":
        script = (repo / "swift_onnx" / "1" / "build_engine.sh").read_text()
        assert '"$TRTEXEC" --onnx=model.onnx --saveEngine=model.plan' in script and "input_ids:64x128" in script


def test_label_sets_must_match(checkpoints, tmp_path):
    repo = tmp_path / "repo"
    export_stage(checkpoints["swift"], "swift", repo, sample_texts=SAMPLE)
    cfg = json.loads((checkpoints["super"] / "config.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for f in checkpoints["super"].iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg["id2label"] = {"0": "bad", "1": "good", "2": "meh"}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RepositoryError, match="share one label set"):
        export_stage(other, "super", repo, sample_texts=SAMPLE)
    assert "super" not in model_names(repo)


def test_cli_errors(tmp_path):
    (tmp_path / "notackpt").mkdir()
    out = subprocess.run(
        ELANG + ["export", str(tmp_path / "notackpt"), "--as", "swift", "--repository", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "not a Hugging Face checkpoint" in out.stderr
    out = subprocess.run(
        ELANG + ["export", str(tmp_path), "--as", "medium", "--repository", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "invalid choice: 'medium'" in out.stderr
    out = subprocess.run(ELANG + ["train", "--model", str(tmp_path / "missing")], capture_output=True, text=True)
    assert out.returncode == 2 and "neither a named model" in out.stderr


def _labelled_csv(tmp_path):
    f = tmp_path / "labelled.csv"
    rows = sample_rows()
    f.write_text(
        "text,label\n" + "".join(f'"{rows[i % len(rows)][0]} {i}",{rows[i % len(rows)][1]}\n' for i in range(120))
    )
    return f


def test_parity_refuses_a_serving_tokenizer_that_differs_from_training(checkpoints, tmp_path):
    """The logits could agree on ids the model never saw in training: the ids are compared first."""
    from elang.export.classify.onnx import ExportError, check_parity

    repo = tmp_path / "repo"
    export_stage(checkpoints["swift"], "swift", repo, sample_texts=SAMPLE, max_length=64)
    stage = repo / "swift" / "1"
    texts = [t.upper() for t in SAMPLE[:40]]
    assert check_parity(checkpoints["swift"], stage, texts, max_length=64).ok  # same tokenizer: fine
    tok = json.loads((stage / "tokenizer.json").read_text())
    tok["normalizer"] = None  # serving no longer lowercases: "GOOD" is not "good"
    (stage / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(
        ExportError, match=r"serving tokenizer differs from the training tokenizer on validation text 0"
    ):
        check_parity(checkpoints["swift"], stage, texts, max_length=64)


def test_a_checkpoint_with_64_positions_is_served_at_64_tokens_and_truncates_a_huge_text(tmp_path):
    """A user's checkpoint that takes 64 tokens: the stage gets max_length 64 (not the default 128), a
    50,000-word text is truncated, not an ONNX Runtime error, and --max-length above 64 is refused."""
    from dataclasses import replace

    from elang.export.classify.stage import checkpoint_token_limit
    from elang.runtimes.classifier import OnnxTextClassifier

    ckpt = make_tiny_checkpoint(tmp_path / "short", replace(TINY_SWIFT, positions=64))
    assert checkpoint_token_limit(ckpt) == 64
    repo = tmp_path / "repo"
    out = subprocess.run(
        ELANG + ["export", str(ckpt), "--as", "swift", "--repository", str(repo)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "max_length on validation: " in out.stdout and "longer than max_length 64 tokens" in out.stdout
    params = parse_config((repo / "swift" / "config.pbtxt").read_text()).parameters
    assert params["max_length"].string_value == "64", params
    served = int(params["max_length"].string_value)
    logits = OnnxTextClassifier(repo / "swift" / "1", max_length=served)(["word " * 50_000, "ok"])
    assert logits.shape == (2, len(TINY_SWIFT.labels))
    refused = subprocess.run(
        ELANG + ["export", str(ckpt), "--as", "swift", "--repository", str(tmp_path / "r2"), "--max-length", "128"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode != 0 and "takes at most 64 tokens" in refused.stderr, refused.stderr


def test_the_token_limit_counts_the_position_offset_of_roberta_and_mpnet(tmp_path):
    from elang.export.classify.stage import checkpoint_token_limit

    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "mpnet", "max_position_embeddings": 514, "pad_token_id": 1})
    )
    assert checkpoint_token_limit(tmp_path) == 512
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1e30}))
    assert checkpoint_token_limit(tmp_path) == 512
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256}))
    assert checkpoint_token_limit(tmp_path) == 256
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 64}))
    (tmp_path / "tokenizer_config.json").unlink()
    assert checkpoint_token_limit(tmp_path) == 64
