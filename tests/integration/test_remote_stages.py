"""Stages on another Triton server (remote_stages): two real servers on 127.0.0.1.

Server B holds the Super of a classifier pair, the later segments of a multi-exit model and
the Super of a generating pair; server A holds the routers and their first stages, and calls
B over asyncio gRPC. Routing is exact for the three tasks at thresholds that force each route;
with B killed under load, rows that stay on A never fail and stay fast, escalations fail
within the stage deadline naming the remote stage, nothing is lost; B restarted on its port
serves escalations again within 10 s, with A untouched."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from elang import contract as c
from elang.client.client import ClientError, ElangClient
from elang.core.routing import cascade_offline, get_policy
from elang.export.classify.tiny import TinySpec, make_tiny_multi_exit, sample_rows
from elang.export.exits.cut import export_segments
from elang.ops.health import deep_check
from elang.ops.server import TritonServer
from elang.repository.exits import ExitModelSpec, write_exit_model
from elang.repository.writer import parse_config, render_config, tune_repository
from elang.runtimes.segments import Segment, all_exit_logits

pytestmark = pytest.mark.integration

TEXTS = [t for t, _ in sample_rows()][:24]
EXITS = (1, 2, 4)


def _rename(folder, name):
    """Serve model folder ``folder`` under ``name`` (its config names it)."""
    cfg = parse_config((folder / "config.pbtxt").read_text())
    cfg.name = name
    (folder / "config.pbtxt").write_text(render_config(cfg))
    folder.rename(folder.parent / name)


@pytest.fixture(scope="module")
def layout(tiny_repo, tmp_path_factory):
    from elang.export.generate.stage import export_seq2seq_stage
    from elang.export.generate.tiny import tiny_g2p_checkpoint, tiny_g2p_splits

    root = tmp_path_factory.mktemp("remote")
    a, a2, b = root / "a", root / "a2", root / "b"
    # The pair: A gets the router and the Swift, B the Super.
    shutil.copytree(tiny_repo["repo"], a)
    b.mkdir()
    shutil.move(str(a / "super"), str(b / "super"))
    # A multi-exit model: A runs the first segment in the router, B serves the two later ones.
    bert = make_tiny_multi_exit(root / "bert", TinySpec(layers=4, hidden=32, heads=4, seed=4), EXITS)
    export_segments(bert, root / "seg", TEXTS[:10], max_length=64)
    write_exit_model(a, ExitModelSpec(root / "seg", prefix="ex_", router="elang_ex", max_length=64, inline="first"))
    for name in ("ex_2", "ex_4"):
        shutil.move(str(a / name), str(b / name))
    # A generating pair: its own repository on A (another task family), its Super on B.
    splits = tiny_g2p_splits()
    cache = root / "cache"
    for role in ("swift", "super"):
        export_seq2seq_stage(tiny_g2p_checkpoint(role, cache, splits), role, a2, splits.validation.inputs)
    shutil.move(str(a2 / "super"), str(b / "super_tmp"))
    _rename(b / "super_tmp", "g2p_super")

    srv_b = TritonServer(b, startup_timeout_s=180).start()
    url = srv_b.grpc_url
    tune_repository(
        a, remote_stages=f"super=grpc://{url}/super,ex_2=grpc://{url},ex_4=grpc://{url}/ex_4", stage_timeout_s=2.0
    )
    tune_repository(a2, remote_stages=f"super=grpc://{url}/g2p_super", stage_timeout_s=2.0)
    srv_a = TritonServer(a, startup_timeout_s=180).start()
    srv_a2 = TritonServer(a2, startup_timeout_s=180).start()
    state = {"a": srv_a, "a2": srv_a2, "b": srv_b, "b_repo": b, "seg": root / "seg", "splits": splits}
    yield state
    for srv in (srv_a, srv_a2, state["b"]):
        srv.stop()


def test_the_router_reads_the_remote_stage_and_its_server_lacks_it(layout):
    ready = ElangClient(layout["a"].grpc_url).ready_models()
    assert "super" not in ready and "ex_4" not in ready and {"elang", "swift", "elang_ex", "ex_1"} <= set(ready)
    params = ElangClient(layout["a"].grpc_url).model_parameters("elang")
    assert params[c.PARAM_REMOTE_STAGES].startswith("super=grpc://127.0.0.1:")
    assert "ex_2=" not in params[c.PARAM_REMOTE_STAGES]  # each router takes its own stages' entries


@pytest.mark.parametrize("threshold", ["inf", "-inf", "middle"])
def test_a_pair_routes_exactly_through_a_remote_super(layout, offline, threshold):
    swift = offline["swift"](TEXTS)
    sup = offline["super"](TEXTS)
    from elang.core.routing import energy

    e = energy(swift, 1.0)
    thr = {"inf": np.inf, "-inf": -np.inf, "middle": float(np.median(e))}[threshold]
    out = ElangClient(layout["a"].grpc_url).infer_batch(TEXTS, thr)
    route = out[c.ROUTE].ravel()
    want = (e > thr).astype(int)
    np.testing.assert_array_equal(route, want)
    np.testing.assert_allclose(out[c.LOGITS], np.where(want[:, None] == 1, sup, swift), atol=1e-5)
    if threshold == "middle":
        assert 0 < route.sum() < len(TEXTS)


@pytest.mark.parametrize("where", ["first", "second", "last"])
def test_exits_route_exactly_with_later_segments_remote(layout, where):
    thresholds = {"first": [0.0, 0.0], "second": [1.01, 0.0], "last": [1.01, 1.01]}[where]
    segs = [Segment(layout["seg"] / f"seg{i}", max_length=64) for i in range(len(EXITS))]
    z = all_exit_logits(segs, TEXTS, batch=len(TEXTS), progress=False)
    route, logits, _ = cascade_offline(
        z, get_policy("softmax"), np.asarray(thresholds), [s.info.temperature for s in segs]
    )
    out = ElangClient(layout["a"].grpc_url, model="elang_ex").infer_batch(TEXTS, ",".join(map(repr, thresholds)))
    np.testing.assert_array_equal(out[c.ROUTE].ravel(), route)
    np.testing.assert_allclose(out[c.LOGITS], logits, atol=1e-5)
    assert set(route.tolist()) == {{"first": 0, "second": 1, "last": 2}[where]}


@pytest.mark.parametrize("threshold", ["inf", "-inf"])
def test_a_generating_pair_routes_exactly_through_a_remote_super(layout, threshold):
    words = list(layout["splits"].test.inputs[:6])
    out = ElangClient(layout["a2"].grpc_url).generate_batch(words, threshold)
    want_stage = (
        ElangClient(layout["b"].grpc_url, model="g2p_super")
        if threshold == "-inf"
        else ElangClient(layout["a2"].grpc_url, model="swift")
    )
    ref = want_stage.generate_batch(words)
    assert out[c.ROUTE].ravel().tolist() == [1 if threshold == "-inf" else 0] * len(words)
    assert [bytes(x) for x in out[c.OUTPUT_TEXT].ravel()] == [bytes(x) for x in ref[c.OUTPUT_TEXT].ravel()]


def test_killing_the_remote_server_fails_escalations_only_and_a_restart_heals(layout):
    a, b = layout["a"], layout["b"]
    client = ElangClient(a.grpc_url, timeout_s=30)
    stop = threading.Event()
    tally = {"sent": 0, "answered": 0, "failed": 0, "swift_failed": 0, "swift_slow": 0, "errors": []}
    lock = threading.Lock()

    def load(threshold: str) -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                client.infer_batch(TEXTS[:4], threshold)
                ok = True
            except ClientError as exc:
                ok = False
                err = str(exc)
            with lock:
                tally["sent"] += 1
                if ok:
                    tally["answered"] += 1
                    if threshold == "inf" and time.monotonic() - t0 > 1.0:
                        tally["swift_slow"] += 1
                else:
                    tally["failed"] += 1
                    tally["errors"].append((threshold, err, time.monotonic() - t0))
                    if threshold == "inf":
                        tally["swift_failed"] += 1

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(load, t) for t in ("inf", "inf", "-inf")]
        time.sleep(1.0)
        b.process.kill()  # SIGKILL: the Super's server dies under load
        b.process.wait(10)
        time.sleep(3.0)
        up = [e for e in tally["errors"] if e[0] == "-inf"]
        assert up, "escalations must fail while the remote server is down"
        assert all("remote stage 'super'" in msg and took < 2.0 + 1.0 for _, msg, took in up), up[:3]
        report = deep_check(a.http_url, timeout_s=5)
        assert report.healthy, report.summary()  # A is alive: restarting it cannot heal B
        assert any(ch.status == "remote" for ch in report.checks), report.summary()
        b.stop()
        ports = {"grpc_port": b.grpc_port, "http_port": b.http_port, "metrics_port": b.metrics_port}
        restarted = TritonServer(layout["b_repo"], startup_timeout_s=180, **ports).start()
        layout["b"] = restarted
        t0 = time.monotonic()
        while True:
            try:
                out = ElangClient(a.grpc_url).infer_batch(TEXTS[:2], "-inf")
                break
            except ClientError:
                assert time.monotonic() - t0 < 10.0, "escalations did not recover within 10 s of the restart"
                time.sleep(0.2)
        assert out[c.ROUTE].ravel().tolist() == [1, 1]
        stop.set()
        for f in futures:
            f.result()
    assert tally["swift_failed"] == 0 and tally["swift_slow"] == 0, tally["errors"][:3]
    assert tally["sent"] == tally["answered"] + tally["failed"] and tally["answered"] > 0


def _certificates(folder):
    """A CA and a server certificate for 127.0.0.1 (openssl), as files."""
    import subprocess

    folder.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=elang-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "ext.cnf")  # fmt: skip
    return {n: folder / n for n in ("ca.crt", "server.crt", "server.key")}


def test_a_remote_stage_over_tls_needs_the_servers_root_certificate(tiny_repo, offline, tmp_path):
    certs = _certificates(tmp_path / "certs")
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_repo["repo"], a)
    b.mkdir()
    shutil.move(str(a / "super"), str(b / "super"))
    tls = [
        "--grpc-use-ssl=true",
        f"--grpc-server-cert={certs['server.crt']}",
        f"--grpc-server-key={certs['server.key']}",
    ]
    with TritonServer(b, startup_timeout_s=180, extra_args=tls) as srv_b:
        tune_repository(a, remote_stages=f"super=grpcs://{srv_b.grpc_url}/super", stage_timeout_s=5.0)
        cfg_path = a / c.ROUTER_MODEL / "config.pbtxt"
        cfg = parse_config(cfg_path.read_text())
        cfg.parameters["remote_tls_root_certificates"].string_value = str(certs["ca.crt"])
        cfg_path.write_text(render_config(cfg))
        with TritonServer(a, startup_timeout_s=180) as srv_a:
            out = ElangClient(srv_a.grpc_url).infer_batch(TEXTS[:3], "-inf")
            assert out[c.ROUTE].ravel().tolist() == [1, 1, 1]
            np.testing.assert_allclose(out[c.LOGITS], offline["super"](TEXTS[:3]), atol=1e-5)
        # Without the CA the server's certificate is not trusted: escalations fail, naming the stage.
        del cfg.parameters["remote_tls_root_certificates"]
        cfg_path.write_text(render_config(cfg))
        with TritonServer(a, startup_timeout_s=180) as srv_a:
            assert ElangClient(srv_a.grpc_url).infer_batch(TEXTS[:2], "inf")[c.ROUTE].ravel().tolist() == [0, 0]
            with pytest.raises(ClientError, match="remote stage 'super' at grpcs://"):
                ElangClient(srv_a.grpc_url).infer_batch(TEXTS[:2], "-inf")
