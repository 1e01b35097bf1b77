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


def test_a_crashed_server_leaves_no_orphaned_stub_and_no_shared_memory(tiny_repo, tmp_path):
    """SIGKILL the server itself: its /dev/shm regions stay behind, and a stub that does not notice
    its parent's death lives on in the server's process group. stop() ends every live stub of that
    group, by PID, and removes the regions the stubs held."""
    import os
    import signal
    from pathlib import Path

    from elang.ops.server import group_stubs

    srv = TritonServer(tiny_repo["repo"]).start()
    stubs = [pid for pid, _ in srv_stubs(srv)]
    regions = set(srv._shm_regions)
    assert stubs and regions and all((Path("/dev/shm") / r).exists() for r in regions)
    # A stub that cannot notice its parent's death (here: stopped; in the field: stuck in a call)
    # outlives the crash, as the orphans of issue 25 did, with its region.
    os.kill(stubs[0], signal.SIGSTOP)
    os.kill(srv.process.pid, signal.SIGKILL)
    srv.process.wait(10)
    time.sleep(1.0)
    assert group_stubs(srv.process.pid) == [stubs[0]]  # an orphan, in the dead server's process group
    assert any((Path("/dev/shm") / r).exists() for r in regions)  # and what it holds
    srv.stop()
    deadline = time.monotonic() + 10
    while group_stubs(srv.process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_stubs(srv.process.pid) == []
    assert not any((Path("/dev/shm") / r).exists() for r in regions)


def srv_stubs(srv: TritonServer):
    from elang.ops.server import stub_processes

    return stub_processes(srv.process.pid).values()
