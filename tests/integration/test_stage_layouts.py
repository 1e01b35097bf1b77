"""Stage layouts other than python-ort on the real server: the native tokenizer step and the python ensemble.

The onnxruntime_onnx step itself needs the NGC container's ONNX Runtime backend, which
the PyPI server lacks; its config is checked by parsing (tests/unit/test_repository.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from elang.core.texts import encode_texts
from elang.ops.server import TritonServer
from elang.repository.writer import ClassifierSpec, write_repository
from elang.runtimes.classifier import TextTokenizer

pytestmark = pytest.mark.integration


def test_native_tokenizer_model(tiny_repo, tmp_path):
    repo = write_repository(
        tmp_path / "native",
        ClassifierSpec(tiny_repo["work"] / "swift", runtime="onnxruntime", max_length=32),
        ClassifierSpec(tiny_repo["work"] / "super", runtime="onnxruntime", max_length=32),
    )
    texts = ["a short one", "a somewhat longer text about the weather and trains " * 5]
    with TritonServer(repo, extra_args=["--model-control-mode=explicit", "--load-model=swift_tokenizer"]) as srv:
        cl = grpcclient.InferenceServerClient(srv.grpc_url)
        inp = grpcclient.InferInput("TEXT", [2, 1], "BYTES")
        inp.set_data_from_numpy(encode_texts(texts))
        out = cl.infer("swift_tokenizer", [inp])
        want = TextTokenizer(tiny_repo["work"] / "swift", 32, pad_to_max_length=True)(texts)
        for name in ("input_ids", "attention_mask"):
            np.testing.assert_array_equal(out.as_numpy(name), want[name])
        assert out.as_numpy("input_ids").shape == (2, 32)
        bad = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
        bad.set_data_from_numpy(np.array([[b""]], dtype=object))
        with pytest.raises(InferenceServerException, match="empty"):
            cl.infer("swift_tokenizer", [bad])


def test_python_ensemble_layout_serves_the_same_answers(tiny_repo, offline, tmp_path):
    """Router -> ensemble(tokenizer -> ONNX) stages give the offline logits (padding to max_length is masked)."""
    from elang.client.client import ElangClient

    repo = write_repository(
        tmp_path / "ens",
        ClassifierSpec(tiny_repo["work"] / "swift", runtime="python-ensemble", max_length=64),
        ClassifierSpec(tiny_repo["work"] / "super", runtime="python-ensemble", max_length=64),
    )
    texts = ["the food was cold", "best concert ever", "the meeting moved to friday"]
    with TritonServer(repo) as srv:
        client = ElangClient(srv.grpc_url)
        low = client.infer_batch(texts, threshold="-inf")
        high = client.infer_batch(texts, threshold="inf")
    np.testing.assert_allclose(low["LOGITS"], offline["super"](texts), atol=1e-4)
    np.testing.assert_allclose(high["LOGITS"], offline["swift"](texts), atol=1e-4)
    assert low["ROUTE"].ravel().tolist() == [1, 1, 1] and high["ROUTE"].ravel().tolist() == [0, 0, 0]
