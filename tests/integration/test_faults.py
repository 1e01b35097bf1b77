"""Faults and overload on the real server: a slow Super, a dead Super stub, full queues, a
batch larger than Super accepts, and a client that gives up. Tiny models; Super is written
with fault injection on, so a request parameter makes it sleep (elang_fault_sleep_s)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from elang import contract as c
from elang.bench import prom_samples
from elang.client.client import ClientError, ElangClient, OverloadedError
from elang.core.texts import encode_texts
from elang.export.classify.tiny import sample_rows
from elang.ops.health import deep_check
from elang.ops.server import TritonServer, free_port, stub_processes
from elang.ops.supervisor import Supervisor
from elang.repository.writer import ClassifierSpec, tune_repository, write_classifier

pytestmark = pytest.mark.integration

TEXTS = [t for t, _ in sample_rows()]


def _sleep_super(url: str, seconds: float, rows: int = 1) -> threading.Thread:
    """Occupy Super's only instance for ``seconds`` with a direct call (in a thread)."""

    def call() -> None:
        client = grpcclient.InferenceServerClient(url)
        inp = grpcclient.InferInput(c.TEXT, [rows, 1], "BYTES")
        inp.set_data_from_numpy(encode_texts(TEXTS[:rows]))
        try:
            client.infer(c.SUPER_MODEL, [inp], parameters={c.FAULT_SLEEP_PARAM: str(seconds)}, client_timeout=60)
        except Exception:  # noqa: BLE001 - only its side effect matters
            pass

    th = threading.Thread(target=call, daemon=True)
    th.start()
    time.sleep(0.3)  # let it reach Super's execute
    return th


def _metric(server: TritonServer, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    return sum(v for have, v in prom_samples(text, name) if all(have.get(k) == w for k, w in labels.items()))


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.monotonic()
    try:
        out = fn(*args, **kwargs)
    except ClientError as exc:
        out = exc
    return time.monotonic() - t0, out


@pytest.fixture(scope="module")
def fault_repo(tiny_repo, tmp_path_factory):
    repo = tmp_path_factory.mktemp("faults") / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    # Super accepts at most 2 rows per call; the router is not told (it reads Super's config at load).
    write_classifier(repo, c.SUPER_MODEL, ClassifierSpec(tiny_repo["work"] / "super", max_batch_size=2))
    tune_repository(repo, fault_injection=True, stage_timeout_s=2.0)
    return repo


@pytest.fixture(scope="module")
def fault_server(fault_repo):
    srv = TritonServer(fault_repo, model_control="explicit", startup_timeout_s=180)
    srv.start()
    yield srv
    srv.stop()


def _retune(server: TritonServer, repo, **knobs) -> None:
    """Change knobs in the repository and reload what changed on the running server."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    for model in tune_repository(repo, **knobs):
        client.load_model(model)


def test_a_slow_super_fails_escalated_requests_at_the_deadline_and_never_delays_swift(fault_server, fault_repo):
    _retune(fault_server, fault_repo, stage_timeout_s=2.0, stage_inflight=2)
    client = ElangClient(fault_server.grpc_url, timeout_s=30)
    sleeper = _sleep_super(fault_server.grpc_url, 8.0)
    with ThreadPoolExecutor(4) as pool:
        escalated = [pool.submit(_timed, client.infer_batch, TEXTS[i : i + 2], "-inf") for i in (0, 2)]
        time.sleep(0.2)  # the router now waits for Super on those
        swift_only = [_timed(client.infer_batch, [TEXTS[i]], "inf") for i in range(5)]
        results = [f.result() for f in escalated]
    for dt, out in swift_only:
        assert not isinstance(out, Exception), out
        assert out[c.ROUTE].ravel().tolist() == [0] and dt < 0.5, dt
    for dt, out in results:
        assert isinstance(out, ClientError) and out.kind == "deadline", out
        assert "'super'" in str(out) and "stage_timeout_s=2" in str(out)
        assert dt < 2.0 + 1.0, dt
    sleeper.join(15)
    # Super is free again: escalation works, and the router gave its abandoned calls' slots back.
    out = client.infer_batch(TEXTS[:3], "-inf")
    assert out[c.ROUTE].ravel().tolist() == [1, 1, 1]
    assert _metric(fault_server, "elang_failed_rows_total", stage="super", reason="deadline") >= 4


def test_a_router_batch_larger_than_supers_is_sent_in_chunks(fault_server, fault_repo):
    before = _metric(fault_server, "nv_inference_exec_count", model="super")
    out = ElangClient(fault_server.grpc_url).infer_batch(TEXTS[:11], "-inf")
    assert out[c.ROUTE].ravel().tolist() == [1] * 11  # Super's max_batch_size is 2
    assert _metric(fault_server, "nv_inference_exec_count", model="super") - before >= 6


def test_overload_gets_an_immediate_clear_error_and_the_client_counts_it(fault_server, fault_repo):
    n = 2
    _retune(fault_server, fault_repo, max_queue_size=n)
    try:
        sleeper = _sleep_super(fault_server.grpc_url, 2.0)
        direct = ElangClient(fault_server.grpc_url, model=c.SUPER_MODEL, timeout_s=30)
        t0 = time.monotonic()
        with ThreadPoolExecutor(10 * n) as pool:
            futures = [pool.submit(_timed, direct.infer_batch, [TEXTS[i]]) for i in range(10 * n)]
            results = [f.result() for f in futures]
        sleeper.join(10)
        refused = [(dt, out) for dt, out in results if isinstance(out, OverloadedError)]
        answered = [out for _, out in results if isinstance(out, dict)]
        assert len(refused) + len(answered) == 10 * n  # nothing hangs, nothing else fails
        assert len(answered) <= n + 1 and len(refused) >= 10 * n - n - 1
        assert all(dt < 1.0 for dt, _ in refused)  # at once, not after the sleep
        assert "overloaded, retry later" in str(refused[0][1])
        assert time.monotonic() - t0 < 10
        # The client's statistics count them, by kind.
        sleeper = _sleep_super(fault_server.grpc_url, 2.0)
        res = direct.classify(TEXTS[: 10 * n], batch_size=1, concurrency=10 * n)
        sleeper.join(10)
        assert res.stats.failures_by_kind.get("overloaded", 0) >= 10 * n - n - 1
        assert res.stats.answered + res.stats.failed == 10 * n
        assert "overloaded" in res.stats.format_table()
    finally:  # back to the default: no queue policy anywhere
        _retune(fault_server, fault_repo, max_queue_size=0, queue_timeout_s=0)


def test_the_routers_own_stage_queue_sheds_excess_rows(fault_server, fault_repo):
    _retune(fault_server, fault_repo, stage_inflight=1, stage_queue_rows=3, stage_timeout_s=10.0)
    try:
        sleeper = _sleep_super(fault_server.grpc_url, 2.0)
        client = ElangClient(fault_server.grpc_url, timeout_s=30)
        res = client.classify(TEXTS[:12], batch_size=1, concurrency=12, threshold="-inf")
        sleeper.join(10)
        kinds = res.stats.failures_by_kind
        assert res.stats.answered + res.stats.failed == 12
        assert kinds.get("overloaded", 0) >= 12 - 1 - 3 - 1 and set(kinds) <= {"overloaded"}
        assert any("stage_queue_rows=3" in (p.error or "") for p in res.predictions)
    finally:
        _retune(fault_server, fault_repo, stage_inflight=2, stage_queue_rows=256, stage_timeout_s=2.0)


def test_a_cancelled_request_costs_super_nothing(fault_server, fault_repo):
    _retune(fault_server, fault_repo, stage_inflight=1, stage_timeout_s=10.0)
    try:
        sleeper = _sleep_super(fault_server.grpc_url, 3.0)
        before = _metric(fault_server, "nv_inference_count", model="super")
        rows_before = _metric(fault_server, "elang_stage_rows_total", stage="super")
        client = ElangClient(fault_server.grpc_url, timeout_s=30)
        first = threading.Thread(target=client.infer_batch, args=([TEXTS[0]], "-inf"), daemon=True)
        first.start()  # takes the router's only slot to Super, and waits behind the sleeper
        time.sleep(0.3)
        impatient = ElangClient(fault_server.grpc_url, timeout_s=1.0)
        with pytest.raises(ClientError) as err:
            impatient.infer_batch(TEXTS[1:6], "-inf")  # 5 texts, given up after 1 s
        assert err.value.kind == "deadline"
        sleeper.join(10)
        first.join(10)
        time.sleep(1.0)  # the router answers the cancelled request and sends its metrics
        # Super ran the sleeper's text and the first request's (counted when done), never the 5 cancelled ones.
        assert _metric(fault_server, "nv_inference_count", model="super") - before == 2
        # The router sent Super the first request's row only: the cancelled rows were withdrawn.
        assert _metric(fault_server, "elang_stage_rows_total", stage="super") - rows_before == 1
        assert _metric(fault_server, "elang_failed_rows_total", stage="super", reason="cancelled") >= 5
    finally:
        _retune(fault_server, fault_repo, stage_inflight=2, stage_timeout_s=2.0)


def _load(url: str, stop: threading.Event, out: list, threshold: str) -> None:
    client = ElangClient(url, timeout_s=30)
    i = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            res = client.infer_batch([TEXTS[i % len(TEXTS)]], threshold)
            out.append(("ok", time.monotonic() - t0, int(res[c.ROUTE][0, 0]), t0))
        except ClientError as exc:
            out.append((exc.kind, time.monotonic() - t0, str(exc), t0))
            time.sleep(0.05)
        i += 1


def test_a_killed_super_stub_is_healed_by_reloading_it(fault_server, fault_repo):
    """Supervisor with heal 'reload': requests in flight all get an answer; Swift-only keeps working."""
    _retune(fault_server, fault_repo, stage_timeout_s=2.0, stage_inflight=2)
    sup = Supervisor(fault_server, heal="reload", interval_s=1.0, failures=2, timeout_s=5.0, notify=lambda m: None)
    stop = threading.Event()
    escalated: list = []
    swift: list = []
    threads = [
        threading.Thread(target=_load, args=(fault_server.grpc_url, stop, escalated, "-inf"), daemon=True),
        threading.Thread(target=_load, args=(fault_server.grpc_url, stop, swift, "inf"), daemon=True),
    ]
    for th in threads:
        th.start()
    time.sleep(1.0)
    sup.start()
    killed_at = time.monotonic()
    os.kill(fault_server.stub_pids(c.SUPER_MODEL)["super_0_0"], signal.SIGKILL)
    healed = healed_at = None
    while time.monotonic() - killed_at < 60:
        time.sleep(0.5)
        if sup.events and sup.events[-1].healed_s is not None:
            healed_at = time.monotonic()
            healed = healed_at - killed_at
            break
    time.sleep(2.0)
    stop.set()
    for th in threads:
        th.join(40)
    sup.stop()
    assert healed is not None and healed < 60, [e.describe() for e in sup.events]
    assert sup.events[0].action.startswith("reload of") and "super" in sup.events[0].failing
    print(f"time to heal (reload): {healed:.1f} s; {sup.events[0].describe()}")
    assert all(th.is_alive() is False for th in threads)  # nobody hangs
    # Super answers again: every escalated request sent once the supervisor reported it healed
    # (one sent before may still be failing at its 2 s stage deadline, and end after those).
    after = [e for e in escalated if e[3] > healed_at]
    assert after and all(e[0] == "ok" and e[2] == 1 for e in after), after[:5]
    errors = [e for e in escalated if e[0] != "ok"]
    assert errors and all("super" in e[2] for e in errors)  # clear errors naming the stage
    assert all(e[1] < 2.0 + 2.0 for e in escalated)
    assert all(e[0] == "ok" for e in swift)  # Swift-only requests never failed


def test_elang_serve_restarts_a_server_whose_stub_died_and_shuts_down_promptly(fault_repo, tmp_path):
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elang.cli",
            "serve",
            "--model-repository",
            str(fault_repo),
            "--http-port",
            str(ports["http"]),
            "--grpc-port",
            str(ports["grpc"]),
            "--metrics-port",
            str(ports["metrics"]),
            "--health-interval",
            "1",
            "--health-failures",
            "2",
            "--heal",
            "restart",
            "--log-file",
            str(tmp_path / "tritonserver.log"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"127.0.0.1:{ports['grpc']}"
    try:
        deadline = time.monotonic() + 120  # Triton opens gRPC a moment before HTTP: wait for both
        while not (ElangClient(url).is_ready() and deep_check(f"127.0.0.1:{ports['http']}").healthy):
            assert time.monotonic() < deadline, "elang serve did not come up"
            time.sleep(0.3)
        server_pid = next(int(p.name) for p in _children(proc.pid) if "tritonserver" in _comm(p))
        stub = stub_processes(server_pid, c.SUPER_MODEL)["super_0_0"][0]
        os.kill(stub, signal.SIGKILL)
        killed_at = time.monotonic()
        report = deep_check(f"127.0.0.1:{ports['http']}")
        assert not report.healthy and "super" in report.failing()
        healed = None
        while time.monotonic() - killed_at < 60:
            time.sleep(0.5)
            try:
                out = ElangClient(url, timeout_s=5).infer_batch(TEXTS[:2], "-inf")
            except ClientError:
                continue
            if out[c.ROUTE].ravel().tolist() == [1, 1]:
                healed = time.monotonic() - killed_at
                break
        assert healed is not None, "not healed within 60 s"
        print(f"time to heal (elang serve, restart): {healed:.1f} s")
        time.sleep(3.0)  # the supervisor's own check confirms the heal (it checks every second)
        # A dead stub again, then SIGTERM: the shutdown does not wait for it.
        server_pid = next(int(p.name) for p in _children(proc.pid) if "tritonserver" in _comm(p))
        os.kill(stub_processes(server_pid, c.SUPER_MODEL)["super_0_0"][0], signal.SIGKILL)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 8.0, out
        assert "healed by restart" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()  # its server dies with it (PR_SET_PDEATHSIG in elang.ops.server)
            proc.wait(10)


def _children(pid: int):
    from pathlib import Path

    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                yield stat.parent
        except (OSError, ValueError, IndexError):
            continue


def _comm(path) -> str:
    try:
        return (path / "comm").read_text()
    except OSError:
        return ""


def test_health_check_reports_each_model(fault_server):
    report = deep_check(fault_server.http_url)
    assert report.healthy, report.summary()
    assert {ch.model for ch in report.checks} == {"elang", "swift", "super"}
    assert np.all([ch.status == "ok" for ch in report.checks])
