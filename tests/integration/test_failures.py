"""A Super that cannot answer must fail requests cleanly, never hang them."""

from __future__ import annotations

import shutil
import time

import pytest

from elang.client.client import ClientError, ElangClient
from elang.ops.server import TritonServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broken_super_server(tiny_repo, tmp_path_factory):
    repo = tmp_path_factory.mktemp("broken") / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    (repo / "super" / "1" / "model.onnx").write_bytes(b"this is not an ONNX model")
    srv = TritonServer(repo, extra_args=["--strict-readiness=false", "--exit-on-error=false"])
    srv.start()
    yield srv
    srv.stop()


def test_super_failure_is_a_clear_error_not_a_hang(broken_super_server):
    client = ElangClient(broken_super_server.grpc_url, timeout_s=30)
    t0 = time.monotonic()
    with pytest.raises(ClientError, match="super"):
        client.infer_batch(["route me to super"], threshold="-inf")
    assert time.monotonic() - t0 < 30


def test_rows_that_stay_on_swift_are_still_served(broken_super_server):
    out = ElangClient(broken_super_server.grpc_url).infer_batch(["stay on swift"], threshold="inf")
    assert out["ROUTE"].ravel().tolist() == [0]


def test_classify_records_the_failure_per_text(broken_super_server):
    res = ElangClient(broken_super_server.grpc_url).classify(["a", "b", "c"], batch_size=1, threshold="-inf")
    assert res.stats.failed == 3
    assert all("super" in p.error for p in res.predictions)
