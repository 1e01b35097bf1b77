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
