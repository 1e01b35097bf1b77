"""Bad input gets a clear per-request error and the server keeps serving."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from elang import contract as c
from elang.client.client import ClientError, ElangClient
from elang.core.texts import encode_texts

pytestmark = pytest.mark.integration


def _infer(url: str, array: np.ndarray, dtype: str = "BYTES", params: dict | None = None, model: str = "elang"):
    cl = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput(c.TEXT, list(array.shape), dtype)
    inp.set_data_from_numpy(array)
    return cl.infer(model, [inp], parameters=params or {})


def _assert_still_serving(url: str):
    out = _infer(url, encode_texts(["still serving after a bad request"]))
    assert out.as_numpy(c.ROUTE).shape == (1, 1)


@pytest.mark.parametrize("model", ["elang", "swift", "super"])
@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([[b""]], dtype=object), "row 0 is empty"),
        (np.array([[b"fine"], [b"  "]], dtype=object), "row 1 is empty"),
        (np.array([[b"\xff\xfe\xfa"]], dtype=object), "not valid UTF-8"),
        (np.array([[b"x" * (c.DEFAULT_MAX_TEXT_BYTES + 1)]], dtype=object), "over the limit"),
    ],
)
def test_bad_text_is_invalid_arg(server, model, array, match):
    with pytest.raises(InferenceServerException, match=match) as err:
        _infer(server.grpc_url, array, model=model)
    assert "INVALID_ARG" in str(err.value.status())
    _assert_still_serving(server.grpc_url)


def test_text_over_max_length_is_truncated_not_refused(server, offline):
    long_text = "the service was great but the food was cold " * 400  # ~3600 tokens, max_length 128
    out = _infer(server.grpc_url, encode_texts([long_text]), params={c.THRESHOLD_PARAM: "-inf"})
    np.testing.assert_allclose(out.as_numpy(c.LOGITS), offline["super"]([long_text]), atol=1e-5)


@pytest.mark.parametrize("value", ["abc", "nan", "1,2", ""])
def test_bad_threshold_parameter(server, value):
    with pytest.raises(InferenceServerException, match=c.THRESHOLD_PARAM):
        _infer(server.grpc_url, encode_texts(["hello"]), params={c.THRESHOLD_PARAM: value})
    _assert_still_serving(server.grpc_url)


def test_bool_threshold_parameter(server):
    with pytest.raises(InferenceServerException, match=c.THRESHOLD_PARAM):
        _infer(server.grpc_url, encode_texts(["hello"]), params={c.THRESHOLD_PARAM: True})


def test_wrong_dtype_is_refused(server):
    with pytest.raises(InferenceServerException, match="(?i)data-type|datatype|TYPE_STRING|BYTES"):
        _infer(server.grpc_url, np.array([[1], [2]], dtype=np.int32), dtype="INT32")
    _assert_still_serving(server.grpc_url)


def test_wrong_shape_is_refused(server):
    with pytest.raises(InferenceServerException, match="(?i)shape"):
        _infer(server.grpc_url, np.array([[b"a", b"b"]], dtype=object))
    _assert_still_serving(server.grpc_url)


def test_zero_rows_is_refused(server):
    with pytest.raises(InferenceServerException) as err:
        _infer(server.grpc_url, np.zeros((0, 1), dtype=object))
    # Triton refuses it before the model runs; the router's own "zero rows" check is the fallback.
    assert "INVALID_ARG" in str(err.value.status()) and "TEXT" in str(err.value)
    _assert_still_serving(server.grpc_url)


def test_unknown_model(server):
    with pytest.raises(ClientError, match="not ready|unknown|not found"):
        ElangClient(server.grpc_url, model="no_such_model").check()


def test_http_bad_text(server):
    cl = httpclient.InferenceServerClient(server.http_url)
    inp = httpclient.InferInput(c.TEXT, [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b""]], dtype=object))
    with pytest.raises(InferenceServerException, match="empty"):
        cl.infer("elang", [inp])


def test_client_marks_bad_texts_and_serves_the_rest(server):
    res = ElangClient(server.grpc_url).classify(["good text", "", "another good one"], batch_size=2)
    assert [p.ok for p in res.predictions] == [True, False, True]
    assert "empty" in res.predictions[1].error
    assert res.stats.failed == 1 and res.stats.answered == 2


def test_client_says_when_the_server_is_down():
    from elang.ops.server import free_port

    client = ElangClient(f"127.0.0.1:{free_port()}", timeout_s=2)
    assert not client.is_ready()
    with pytest.raises(ClientError, match="127.0.0.1"):
        client.classify(["hello"])
