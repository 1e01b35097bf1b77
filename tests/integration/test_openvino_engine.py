"""Engine openvino of a python-ort stage (fp32 and bf16): exported with its agreement against
ONNX Runtime's fp32 reported, served through the real Triton server exactly as OpenVINO answers
offline, and refused where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

from elang import contract as c
from elang.client.client import ElangClient
from elang.export.classify.stage import export_stage
from elang.export.classify.tiny import TINY_SUPER, TINY_SWIFT, make_tiny_checkpoint, sample_rows
from elang.ops.server import TritonServer
from elang.repository.config import model_config, parameters
from elang.repository.writer import RepositoryError
from elang.runtimes.classifier import OnnxTextClassifier

pytestmark = pytest.mark.integration
TEXTS = [t for t, _ in sample_rows()]


def test_a_bf16_openvino_stage_serves_exactly_what_openvino_answers(tmp_path):
    swift = make_tiny_checkpoint(tmp_path / "swift", TINY_SWIFT)
    sup = make_tiny_checkpoint(tmp_path / "super", TINY_SUPER)
    repo = tmp_path / "repo"
    export_stage(swift, "swift", repo, sample_texts=TEXTS, serving={"engine": "openvino", "precision": "fp32"})
    report = export_stage(sup, "super", repo, sample_texts=TEXTS, serving={"engine": "openvino", "precision": "bf16"})
    (t,) = report.transforms
    assert t["name"] == "engine openvino bf16" and t["texts"] == len(TEXTS)
    assert t["argmax_agreement"] >= 0.85  # bf16 on the tiny random model: the stated bound of int8
    params = parameters(model_config(repo, "super"))
    assert (params[c.PARAM_ENGINE], params[c.PARAM_PRECISION]) == ("openvino", "bf16")
    texts = TEXTS[:24]
    offline = {
        name: OnnxTextClassifier(repo / name / "1", max_length=int(parameters(model_config(repo, name))["max_length"]),
                                 engine="openvino", precision=prec)(texts)
        for name, prec in (("swift", "fp32"), ("super", "bf16"))
    }  # fmt: skip
    fp32 = OnnxTextClassifier(repo / "super" / "1", max_length=int(params["max_length"]))(texts)
    # calibrate and its cost measurement read the stage as served: OpenVINO at bf16, not ORT fp32
    from elang.calibration.classify import served_engine, stage_logits

    assert served_engine(repo, "super") == ("openvino", "bf16") and served_engine(repo, "swift") == ("openvino", "fp32")
    np.testing.assert_allclose(stage_logits(repo, "super", texts), offline["super"], atol=1e-5)
    assert not np.allclose(offline["super"], fp32, atol=1e-6)  # bf16 really ran: not fp32's answer
    with TritonServer(repo, startup_timeout_s=180) as srv:
        for name in ("swift", "super"):
            got = ElangClient(srv.grpc_url, model=name).infer_batch(texts)[c.LOGITS]
            np.testing.assert_allclose(got, offline[name], atol=1e-5, err_msg=name)
        # The router's inline Swift runs on OpenVINO too, and routes as its scores say
        res = ElangClient(srv.grpc_url).classify(texts, threshold="inf")
        assert all(p.route == 0 for p in res.predictions)
        np.testing.assert_allclose([p.logits for p in res.predictions], offline["swift"], atol=1e-5)


def test_bf16_without_openvino_and_openvino_off_python_ort_are_refused(tmp_path):
    swift = make_tiny_checkpoint(tmp_path / "swift", TINY_SWIFT)
    with pytest.raises(RepositoryError, match="precision bf16 needs engine openvino"):
        export_stage(swift, "swift", tmp_path / "r1", sample_texts=TEXTS, serving={"precision": "bf16"})
    with pytest.raises(RepositoryError, match="runs in python-ort stages, not runtime onnxruntime"):
        export_stage(swift, "swift", tmp_path / "r2", sample_texts=TEXTS, runtime="onnxruntime",
                     serving={"engine": "openvino"})  # fmt: skip


def _labelled_splits(tmp_path, teacher):
    """160 texts labelled by ``teacher``'s own fp32 answers: on a tiny random model the sample's
    labels are noise; against its own answers, accuracy is agreement with fp32."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from elang.data.datasets import make_splits

    rows = sample_rows()
    texts = [f"{rows[i % len(rows)][0]} {i}" for i in range(160)]
    tok, model = AutoTokenizer.from_pretrained(teacher), AutoModelForSequenceClassification.from_pretrained(teacher)
    with torch.no_grad():
        ids = model(**tok(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    f = tmp_path / "labelled.csv"
    f.write_text("text,label\n" + "".join(f'"{t}",{model.config.id2label[k]}\n' for t, k in zip(texts, ids)))
    return make_splits(f, sizes=(40, 60, 20, 40))


def test_an_int8_openvino_stage_is_quantized_on_calibration_texts_and_serves_exactly(tmp_path):
    """Precision int8: NNCF writes the IR beside model.onnx (accuracy control on validation), the
    stage serves exactly what OpenVINO answers offline from it, and the IR is part of the stage's
    fingerprint; the native OpenVINO backend's config names the IR."""
    from elang.repository.fingerprint import stage_fingerprint
    from elang.runtimes.openvino import INT8_IR

    swift = make_tiny_checkpoint(tmp_path / "swift", TINY_SWIFT)
    sup = make_tiny_checkpoint(tmp_path / "super", TINY_SUPER)
    splits = _labelled_splits(tmp_path, sup)
    repo = tmp_path / "repo"
    export_stage(swift, "swift", repo, splits=splits, serving={"engine": "openvino", "precision": "int8"},
                 int8_max_drop_pt=None)  # fmt: skip
    report = export_stage(sup, "super", repo, splits=splits, serving={"engine": "openvino", "precision": "int8"})
    (t,) = report.transforms
    assert t["name"].startswith("engine openvino int8: OpenVINO int8 (NNCF, 40 calibration texts")  # calibration split
    assert "accuracy control: fp32's answer on >= 97% of 60 validation texts" in t["name"]
    assert t["texts"] == 60 and t["accuracy_fp32"] == 1.0  # validation labelled by the Super's own fp32
    # what accuracy control promised, on validation, for the stage as served (its rest in bf16 where
    # the CPU has it): fp32's answer on >= 97% of the texts; a changed answer costs at most one right one
    assert t["argmax_agreement"] >= 0.97 and t["accuracy_new"] >= t["accuracy_fp32"] - 0.03 - 1e-9
    for name in ("swift", "super"):
        assert (repo / name / "1" / INT8_IR).is_file() and (repo / name / "1" / "model.int8.bin").is_file()
    params = parameters(model_config(repo, "super"))
    assert (params[c.PARAM_ENGINE], params[c.PARAM_PRECISION]) == ("openvino", "int8")
    texts = TEXTS[:24]
    ml = int(params["max_length"])
    offline = {
        name: OnnxTextClassifier(repo / name / "1", max_length=ml, engine="openvino", precision="int8")(texts)
        for name in ("swift", "super")
    }
    fp32 = OnnxTextClassifier(repo / "super" / "1", max_length=ml)(texts)
    assert not np.allclose(offline["super"], fp32, atol=1e-6)  # int8 really ran
    from elang.calibration.classify import served_engine

    assert served_engine(repo, "super") == ("openvino", "int8")
    with TritonServer(repo, startup_timeout_s=180) as srv:
        for name in ("swift", "super"):
            got = ElangClient(srv.grpc_url, model=name).infer_batch(texts)[c.LOGITS]
            np.testing.assert_allclose(got, offline[name], atol=1e-5, err_msg=name)
        res = ElangClient(srv.grpc_url).classify(texts, threshold="-inf")  # every row to the int8 Super
        assert all(p.route == 1 for p in res.predictions)
        np.testing.assert_allclose([p.logits for p in res.predictions], offline["super"], atol=1e-5)
    before = stage_fingerprint(repo, "super")
    from elang.calibration.classify import cached_stage_logits
    from elang.data.datasets import Dataset

    ds = Dataset(texts, None, np.zeros(len(texts), dtype=np.int64), ["a", "b", "c"])
    scores = tmp_path / "cache" / "scores"
    cached_stage_logits(repo, "super", "test", ds, "fp", tmp_path / "cache", None)
    ir = repo / "super" / "1" / "model.int8.bin"
    data = bytearray(ir.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ir.write_bytes(bytes(data))
    assert stage_fingerprint(repo, "super") != before  # a changed IR invalidates a calibration record
    cached_stage_logits(repo, "super", "test", ds, "fp", tmp_path / "cache", None)
    assert len(list(scores.glob("super-test-*.npy"))) == 2  # and the scores calibrate cached for the old one

    native = tmp_path / "native"
    export_stage(sup, "super", native, sample_texts=TEXTS, runtime="openvino", serving={"precision": "int8"})
    cfg = model_config(native, "super_onnx")
    assert cfg.backend == "openvino" and cfg.default_model_filename == "model.xml"
    assert parameters(cfg)["INFERENCE_PRECISION_HINT"] == "bf16"  # the IR's int8 ops, its rest in bf16 where the CPU has it
    assert (native / "super_onnx" / "1" / "model.xml").is_file() and (native / "super_onnx" / "1" / "model.bin").is_file()
    # calibrate and pairs read the native stage as served: the int8 IR, not the ONNX at fp32
    from elang.calibration.classify import stage_logits

    assert served_engine(native, "super") == ("openvino", "int8")
    native_offline = stage_logits(native, "super", texts)
    own = OnnxTextClassifier(native / "super_onnx" / "1", max_length=ml, engine="openvino", precision="int8")
    np.testing.assert_allclose(native_offline, own(texts), atol=1e-6)
    assert not np.allclose(native_offline, fp32, atol=1e-6)


def test_int8_precision_refusals_name_the_problem(tmp_path):
    swift = make_tiny_checkpoint(tmp_path / "swift", TINY_SWIFT)
    with pytest.raises(RepositoryError, match="precision int8 needs engine openvino"):
        export_stage(swift, "swift", tmp_path / "r1", sample_texts=TEXTS, serving={"precision": "int8"})
    with pytest.raises(RepositoryError, match="exclude each other"):
        export_stage(swift, "swift", tmp_path / "r2", sample_texts=TEXTS, quantize="int8",
                     serving={"engine": "openvino", "precision": "int8"})  # fmt: skip
    export_stage(swift, "swift", tmp_path / "r3", sample_texts=TEXTS, serving={"engine": "openvino", "precision": "fp32"})
    with pytest.raises(FileNotFoundError, match="model.int8.xml not found"):
        OnnxTextClassifier(tmp_path / "r3" / "swift" / "1", max_length=64, engine="openvino", precision="int8")


def test_accuracy_control_keeps_fp32_answers_whatever_the_labels_say(tmp_path):
    """Accuracy control measures agreement with fp32, not accuracy: on labels that are noise for
    this model (the sample's own), a candidate that changes answers cannot pass by lucky hits, and
    a validation split without useful labels still gets the bound."""
    from elang.data.datasets import make_splits

    rows = sample_rows()
    f = tmp_path / "noise.csv"
    f.write_text("text,label\n" + "".join(f'"{rows[i % len(rows)][0]} {i}",{rows[i % len(rows)][1]}\n' for i in range(160)))
    splits = make_splits(f, sizes=(40, 60, 20, 40))
    sup = make_tiny_checkpoint(tmp_path / "super", TINY_SUPER)
    report = export_stage(sup, "super", tmp_path / "repo", splits=splits, serving={"engine": "openvino", "precision": "int8"})
    (t,) = report.transforms
    assert "fp32's answer on >= 97% of 60 validation texts" in t["name"]
    assert t["argmax_agreement"] >= 0.97


def test_accuracy_control_validates_quantized_candidates_at_the_served_hint():
    """NNCF compiles what accuracy control validates at fp32; the int8 stage is served with its rest
    at ``precision_hint`` (bf16 where the CPU has it). Inside ``_validate_as_served`` a quantized
    candidate compiles at the served hint, the float reference at f32, and NNCF is restored after."""
    import openvino as ov
    from nncf.quantization.algorithms.accuracy_control import openvino_backend as backend
    from openvino import opset13 as ops

    from elang.export.classify.int8_openvino import _validate_as_served
    from elang.runtimes.openvino import precision_hint

    def model(quantized: bool) -> ov.Model:
        x = ops.parameter([2, 8], np.float32, name="x")
        src = x
        if quantized:
            lo, hi = ops.constant(np.float32(-4.0)), ops.constant(np.float32(4.0))
            src = ops.fake_quantize(x, lo, hi, lo, hi, 256)
        y = ops.matmul(src, ops.constant(np.ones((8, 3), np.float32)), False, False)
        return ov.Model([y], [x])

    core = ov.Core()
    base = backend.OVPreparedModel
    with _validate_as_served(core):
        assert backend.OVPreparedModel is not base
        q = backend.OVPreparedModel(model(True)).model_for_inference
        f = backend.OVPreparedModel(model(False)).model_for_inference
        served = {"bf16": ov.Type.bf16, "f32": ov.Type.f32}[precision_hint("int8", core)]
        assert q.get_property("INFERENCE_PRECISION_HINT") == served
        assert f.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
        x = np.arange(16, dtype=np.float32).reshape(2, 8) / 4
        assert np.allclose(q(x)[0], x.sum(1, keepdims=True).repeat(3, 1), atol=0.5)  # it still runs
    assert backend.OVPreparedModel is base


def test_a_stage_on_two_openvino_streams_serves_what_one_stream_answers(tmp_path):
    """``--streams 2``: the batch's rows run as two parts at once and join back in order, so the
    logits equal one stream's, offline, from the stage through the real server, and from the
    router's inline copy; ``elang tune --streams`` changes it in place and refuses ORT stages."""
    from elang.repository.writer import tune_repository

    swift = make_tiny_checkpoint(tmp_path / "swift", TINY_SWIFT)
    sup = make_tiny_checkpoint(tmp_path / "super", TINY_SUPER)
    repo = tmp_path / "repo"
    export_stage(swift, "swift", repo, sample_texts=TEXTS, serving={"engine": "openvino", "streams": 2})
    export_stage(sup, "super", repo, sample_texts=TEXTS)
    params = parameters(model_config(repo, "swift"))
    assert params[c.PARAM_STREAMS] == "2"
    max_length = int(params["max_length"])
    one = OnnxTextClassifier(repo / "swift" / "1", max_length=max_length, engine="openvino")
    two = OnnxTextClassifier(repo / "swift" / "1", max_length=max_length, engine="openvino", streams=2)
    assert two.session.streams == 2
    for n in (1, 2, 3, 24):  # odd counts too: parts of unequal rows
        np.testing.assert_allclose(two(TEXTS[:n]), one(TEXTS[:n]), atol=1e-5, err_msg=f"{n} texts")
    texts = TEXTS[:24]
    expected = one(texts)
    with TritonServer(repo, startup_timeout_s=180) as srv:
        got = ElangClient(srv.grpc_url, model="swift").infer_batch(texts)[c.LOGITS]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        res = ElangClient(srv.grpc_url).classify(texts, threshold="inf")  # the inline Swift, on two streams
        np.testing.assert_allclose([p.logits for p in res.predictions], expected, atol=1e-5)
    assert tune_repository(repo, streams="swift=1") == ["swift"]
    assert parameters(model_config(repo, "swift"))[c.PARAM_STREAMS] == "1"
    import json

    inline = json.loads((repo / "elang" / "1" / "swift" / c.INLINE_STAGE_FILE).read_text())
    assert inline["parameters"][c.PARAM_STREAMS] == "1"  # the router's copy follows its stage
    with pytest.raises(RepositoryError, match=r"swift: streams \(2\) cannot exceed threads \(1\)"):
        tune_repository(repo, streams="swift=2", threads="swift=1")
    assert parameters(model_config(repo, "swift"))[c.PARAM_STREAMS] == "1"  # refused: nothing written
    with pytest.raises(RepositoryError, match="super: streams need engine openvino"):
        tune_repository(repo, streams="super=2")
    with pytest.raises(RepositoryError, match="streams 2 needs engine openvino"):
        export_stage(sup, "super", tmp_path / "r2", sample_texts=TEXTS, serving={"streams": 2})
