"""Multi-exit models end to end: segment export with parity per exit, and per-row exits through
the real Triton server (tiny random models, BERT and a pruned MPNet)."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from elang import contract as c
from elang.bench import prom_samples
from elang.client.client import ClientError, ElangClient
from elang.core.routing import cascade_offline, get_policy
from elang.export.classify.onnx import ExportError
from elang.export.classify.tiny import TinySpec, make_tiny_multi_exit, sample_rows
from elang.export.exits.cut import check_segments, export_segments
from elang.export.exits.model import MultiExitModel
from elang.ops.server import TritonServer
from elang.repository.exits import ExitModelSpec, write_exit_model
from elang.runtimes.segments import Segment, all_exit_logits

pytestmark = pytest.mark.integration

TEXTS = [t for t, _ in sample_rows()]
EXITS = (1, 2, 4)
TEMPS = (1.0, 1.5, 0.8)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("exits")
    bert = make_tiny_multi_exit(
        root / "bert", TinySpec(layers=4, hidden=32, heads=4, seed=4), EXITS, temperatures=TEMPS
    )
    mpnet = make_tiny_multi_exit(root / "mpnet", TinySpec(layers=4, hidden=32, heads=4, seed=5), (2, 4), "mpnet")
    # Prune two of four heads in two layers (MPNet's shared position bias must follow) and save.
    m = MultiExitModel.load(mpnet)
    m.encoder.prune_heads({0: [1, 3], 2: [0, 1]})
    m._heads_kept = [[0, 2], [0, 1, 2, 3], [2, 3], [0, 1, 2, 3]]
    m.save(mpnet)
    return {"root": root, "bert": bert, "mpnet": mpnet}


@pytest.mark.parametrize("which", ["bert", "mpnet"])
def test_every_exit_of_the_segments_matches_pytorch(models, which):
    out = models["root"] / f"seg-{which}"
    report = export_segments(models[which], out, TEXTS[:40], max_length=64)
    assert len(report.max_abs_diff) == len(MultiExitModel.load(models[which]).layers)
    assert max(report.max_abs_diff) <= 1e-4 and min(report.agreement) == 1.0
    # A subset of the exits: E-LANG with the model's own early exit as Swift.
    sub = export_segments(models[which], models["root"] / f"sub-{which}", TEXTS[:20], exits=(2, 4), max_length=64)
    assert sub.exits == (2, 4) and sub.ok


def test_segments_that_differ_from_pytorch_are_refused(models):
    out = models["root"] / "seg-bad"
    export_segments(models["bert"], out, TEXTS[:10], max_length=64)
    model = MultiExitModel.load(models["bert"])
    with torch.no_grad():
        model.heads[1].out_proj.bias += 0.01  # the PyTorch side changes, the ONNX side does not
    with pytest.raises(ExportError, match="exit 2: max"):
        check_segments(model, out, TEXTS[:10], EXITS, 64, 1e-4)


@pytest.fixture(scope="module")
def exit_server(models):
    repo = models["root"] / "repo"
    seg = models["root"] / "seg-serve"
    export_segments(models["bert"], seg, TEXTS[:10], max_length=64)
    common = {"max_length": 64, "stage_timeout_s": 2.0, "fault_injection": True}
    write_exit_model(repo, ExitModelSpec(seg, prefix="exits_", router="elang_exits", policy="softmax", **common))
    write_exit_model(
        repo, ExitModelSpec(seg, prefix="pat_", router="elang_pat", policy="patience", threshold=1, **common)
    )
    # The same segments, each over BLS in its own stub (elang_exits runs them in its own process).
    write_exit_model(
        repo, ExitModelSpec(seg, prefix="bls_", router="elang_bls", policy="softmax", inline="none", **common)
    )
    srv = TritonServer(repo, startup_timeout_s=180)
    srv.start()
    segments = [Segment(seg / f"seg{i}", max_length=64) for i in range(len(EXITS))]
    yield {"server": srv, "segments": segments, "repo": repo}
    srv.stop()


def _offline(exit_server, texts, policy, threshold):
    z = all_exit_logits(exit_server["segments"], texts, batch=len(texts), progress=False)
    return cascade_offline(z, get_policy(policy), threshold, TEMPS)


def _middle_threshold(exit_server) -> float:
    z = all_exit_logits(exit_server["segments"], TEXTS, batch=len(TEXTS), progress=False)
    p = np.max(np.exp(z[:, 0] / TEMPS[0]) / np.exp(z[:, 0] / TEMPS[0]).sum(1, keepdims=True), axis=1)
    s = np.sort(p)
    k = len(s) // 3
    return float((s[k] + s[k + 1]) / 2)  # a third of the rows leave at the first exit


def test_segments_run_in_the_router_unless_asked_otherwise(exit_server):
    from elang.core.settings import RouterSettings
    from elang.repository.writer import parameters, parse_config

    repo = exit_server["repo"]

    def settings(router: str) -> RouterSettings:
        return RouterSettings.from_parameters(parameters(parse_config((repo / router / "config.pbtxt").read_text())))

    assert settings("elang_exits").inline_stages == settings("elang_exits").stages  # every segment in-process
    assert all((repo / "elang_exits" / "1" / s / "model.onnx").is_file() for s in settings("elang_exits").stages)
    assert settings("elang_bls").inline_stages == ()
    assert not (repo / "elang_bls" / "1" / "bls_2").exists()


def test_a_later_segment_runs_rows_at_their_own_width(exit_server):
    """Rows sent on keep the padding of the batch they came from; the segment drops the columns no
    row attends to, answers as it would at their own width, and hands the state back as wide as it came."""
    first, second = exit_server["segments"][:2]
    short = sorted(TEXTS, key=len)[:3]
    own = first(short).carry
    wide = first(short + [" ".join(TEXTS[:6])]).carry  # a long row widens the batch's padding
    rows = {name: v[: len(short)] for name, v in wide.items()}
    assert rows[c.MASK].shape[1] > own[c.MASK].shape[1]
    seen = []
    run = second.session.run
    second.session.run = lambda names, feeds: seen.append(feeds["hidden_in"].shape) or run(names, feeds)
    try:
        got = second(rows)
    finally:
        second.session.run = run
    assert seen == [(len(short), own[c.MASK].shape[1], own[c.HIDDEN].shape[2])]
    ref = second(own)
    np.testing.assert_allclose(got.logits, ref.logits, atol=1e-5)
    assert got.carry[c.HIDDEN].shape == rows[c.HIDDEN].shape
    np.testing.assert_allclose(got.carry[c.HIDDEN][:, : own[c.MASK].shape[1]], ref.carry[c.HIDDEN], atol=1e-5)


@pytest.mark.parametrize("router", ["elang_exits", "elang_bls"])
@pytest.mark.parametrize("where", ["first", "second", "last", "middle"])
def test_exits_through_the_server_are_the_offline_ones(exit_server, where, router):
    fixed = {"first": [0.0, 0.0], "second": [1.01, 0.0], "last": [1.01, 1.01]}
    thresholds = fixed[where] if where != "middle" else [_middle_threshold(exit_server)] * 2
    client = ElangClient(exit_server["server"].grpc_url, model=router)
    out = client.infer_batch(TEXTS, threshold=",".join(map(repr, thresholds)))
    route, logits, scores = _offline(exit_server, TEXTS, "softmax", np.asarray(thresholds))
    got = out[c.ROUTE].ravel()
    np.testing.assert_array_equal(got, route)
    np.testing.assert_allclose(out[c.LOGITS], logits, atol=1e-5)
    np.testing.assert_allclose(out[c.SCORE].ravel(), scores, atol=1e-5)
    np.testing.assert_array_equal(out[c.EXIT].ravel(), np.asarray(EXITS)[route])
    if where != "middle":  # a threshold pair that forces each exit in turn
        assert set(got.tolist()) == {{"first": 0, "second": 1, "last": 2}[where]}
    else:  # rows leaving at different exits in one batch came back in order
        assert len(set(got.tolist())) >= 2


def test_patience_is_kept_per_row_through_the_server(exit_server):
    client = ElangClient(exit_server["server"].grpc_url, model="elang_pat")
    for patience in (0, 1, 2):
        out = client.infer_batch(TEXTS, threshold=patience)
        route, _, scores = _offline(exit_server, TEXTS, "patience", patience)
        np.testing.assert_array_equal(out[c.ROUTE].ravel(), route)
        np.testing.assert_array_equal(out[c.SCORE].ravel(), scores)
    assert set(route.tolist()) == {2}  # patience 2 needs three agreeing exits: only the last can answer
    # Patience 1 splits the rows between exits 2 and 4 by whether exit 1 and exit 2 agree.
    route, _, _ = _offline(exit_server, TEXTS, "patience", 1)
    assert set(route.tolist()) == {1, 2}


def test_client_stats_per_exit_and_rows_per_exit_in_prometheus(exit_server):
    srv = exit_server["server"]
    threshold = _middle_threshold(exit_server)
    res = ElangClient(srv.grpc_url, model="elang_exits").classify(
        TEXTS, batch_size=7, concurrency=3, threshold=threshold
    )
    route, _, _ = _offline(exit_server, TEXTS, "softmax", threshold)
    st = res.stats
    assert st.stage_names == ("exits_1", "exits_2", "exits_4") and st.exit_layers == EXITS
    assert st.mean_exit_layer == pytest.approx(float(np.mean(np.asarray(EXITS)[route])))
    assert [p.exit for p in res.predictions] == np.asarray(EXITS)[route].tolist()
    assert "mean exit layer" in st.format_table() and "exits_1" in st.format_table()
    want = int(np.sum(route == 0))
    assert want > 0
    deadline = time.monotonic() + 10  # the router publishes its metrics from a thread of its own
    while True:
        text = urllib.request.urlopen(srv.metrics_url, timeout=10).read().decode()
        samples = prom_samples(text, "elang_routed_rows_total")
        rows = {h["route"]: v for h, v in samples if h.get("model") == "elang_exits"}
        if rows.get("exits_1", 0) >= want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows.get("exits_1", 0) >= want and set(rows) == {"exits_1", "exits_2", "exits_4"}


def test_bad_input_gets_a_clear_error_and_the_rest_is_served(exit_server):
    srv = exit_server["server"]
    client = ElangClient(srv.grpc_url, model="elang_exits")
    raw = grpcclient.InferenceServerClient(srv.grpc_url)
    bad = grpcclient.InferInput(c.TEXT, [2, 1], "BYTES")
    bad.set_data_from_numpy(np.array([[b"fine"], [b""]], dtype=np.object_))
    with ThreadPoolExecutor(2) as pool:
        good = pool.submit(client.infer_batch, TEXTS[:5], 1.01)
        with pytest.raises(Exception, match="empty"):
            raw.infer("elang_exits", [bad])
        assert good.result()[c.ROUTE].ravel().tolist() == [2] * 5
    # A later segment called directly with a malformed hidden state names the tensor.
    h = grpcclient.InferInput(c.HIDDEN, [1, 3, 5], "FP32")
    h.set_data_from_numpy(np.zeros((1, 3, 5), dtype=np.float32))
    m = grpcclient.InferInput(c.MASK, [1, 3], "INT64")
    m.set_data_from_numpy(np.ones((1, 3), dtype=np.int64))
    with pytest.raises(Exception, match="input 'HIDDEN'.*Expected \\[-1,-1,32\\]"):  # Triton checks the shape
        raw.infer("exits_2", [h, m])
    h = grpcclient.InferInput(c.HIDDEN, [1, 3, 32], "FP32")
    h.set_data_from_numpy(np.full((1, 3, 32), np.nan, dtype=np.float32))
    with pytest.raises(Exception, match="HIDDEN holds NaN"):  # the segment checks the values
        raw.infer("exits_2", [h, m])
    assert client.infer_batch(TEXTS[:3], 0.0)[c.ROUTE].ravel().tolist() == [0, 0, 0]


def test_a_slow_later_segment_does_not_stall_rows_that_exited_early(exit_server):
    """Segments over BLS (elang_bls): the last one's only instance is held by another caller."""
    srv = exit_server["server"]

    def occupy() -> None:  # the last segment's only instance sleeps 6 s
        cl = grpcclient.InferenceServerClient(srv.grpc_url)
        h = grpcclient.InferInput(c.HIDDEN, [1, 4, 32], "FP32")
        h.set_data_from_numpy(np.zeros((1, 4, 32), dtype=np.float32))
        m = grpcclient.InferInput(c.MASK, [1, 4], "INT64")
        m.set_data_from_numpy(np.ones((1, 4), dtype=np.int64))
        try:
            cl.infer("bls_4", [h, m], parameters={c.FAULT_SLEEP_PARAM: "6"}, client_timeout=30)
        except Exception:  # noqa: BLE001 - only its side effect matters
            pass

    th = threading.Thread(target=occupy, daemon=True)
    th.start()
    time.sleep(0.3)
    client = ElangClient(srv.grpc_url, model="elang_bls", timeout_s=30)
    with ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        late = pool.submit(client.infer_batch, TEXTS[:4], 1.01)  # needs the last segment
        time.sleep(0.2)
        for i in range(5):
            t1 = time.monotonic()
            out = client.infer_batch([TEXTS[i]], 0.0)  # leaves at the first exit
            assert out[c.EXIT].ravel().tolist() == [1] and time.monotonic() - t1 < 0.5
        with pytest.raises(ClientError) as err:
            late.result()
        assert err.value.kind == "deadline" and "'bls_4'" in str(err.value)
        assert time.monotonic() - t0 < 2.0 + 1.5
    th.join(15)


def test_calibrate_a_multi_exit_router_and_apply_it(elang_cli, models, tmp_path):
    from elang.core.settings import RouterSettings
    from elang.repository.writer import parse_config

    repo = tmp_path / "repo"
    seg = tmp_path / "seg"
    export_segments(models["bert"], seg, TEXTS[:10], max_length=64)
    write_exit_model(repo, ExitModelSpec(seg, prefix="exits_", router="elang_exits", max_length=64))
    out = elang_cli(
        "calibrate", "--repository", repo, "--router", "elang_exits", "--mean-exit-layer", "2.5",
        "--sizes", "200,100,300,600", "--out", tmp_path / "cal", "--cache-dir", tmp_path / "cache",
        "--evaluate-on", "test", "--apply",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "mean exit layer" in out.stdout and "| exit layer | rows |" in out.stdout
    assert (tmp_path / "cal" / "curve.png").is_file()
    params = {
        k: v.string_value
        for k, v in parse_config((repo / "elang_exits" / "config.pbtxt").read_text()).parameters.items()
    }
    settings = RouterSettings.from_parameters(params)
    assert len(settings.stage_temperatures) == 3 and settings.calibration_version.startswith("exits-")
    assert settings.thresholds[0] == settings.thresholds[1]  # one threshold for every exit
    from elang.calibration.record import read_record

    record = read_record(repo / "elang_exits")  # the applied record: the common part and the exits' payload
    assert record.certificate["mean_exit_layer"] <= 2.5 and record.task == "exits"
    assert record.payload["kind"] == "multi-exit"
    assert len(record.stage_hashes) == len(record.payload["exit_layers"])
    # A pair's target is refused for a multi-exit router, with the reason.
    bad = elang_cli("calibrate", "--repository", repo, "--router", "elang_exits", "--super-fraction", "0.2",
                    "--sizes", "200,100,300,600", "--cache-dir", tmp_path / "cache")  # fmt: skip
    assert bad.returncode == 2 and "--mean-exit-layer" in bad.stderr
