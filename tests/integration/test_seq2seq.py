"""Seq2seq E-LANG end to end on tiny T5s: export parity (tokens, logits, token energies), greedy
generation with per-row caps, and routing by token energy through the real Triton server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from elang import contract as c
from elang.client.client import ClientError, ElangClient
from elang.core.routing import get_policy
from elang.core.texts import encode_texts
from elang.export.classify.onnx import ExportError
from elang.export.generate.stage import check_parity, export_onnx, export_seq2seq_stage
from elang.export.generate.tiny import tiny_g2p_checkpoint, tiny_g2p_splits, tiny_sentencepiece_t5, tiny_user_t5
from elang.export.generate.train import load_seq2seq
from elang.ops.health import deep_check
from elang.ops.server import TritonServer
from elang.ops.supervisor import Supervisor
from elang.repository.writer import RepositoryError, parse_config, render_config, tune_repository
from elang.runtimes.generator import OnnxSeq2SeqGenerator, token_energies

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def g2p(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    splits = tiny_g2p_splits()
    swift = tiny_g2p_checkpoint("swift", root / "cache", splits)
    super_ = tiny_g2p_checkpoint("super", root / "cache", splits)
    repo = root / "repo"
    reports = [
        export_seq2seq_stage(swift, "swift", repo, splits.validation.inputs),
        export_seq2seq_stage(super_, "super", repo, splits.validation.inputs, serving={"fault_injection": True}),
    ]
    return {"root": root, "splits": splits, "swift": swift, "super": super_, "repo": repo, "reports": reports}


@pytest.fixture(scope="module")
def server(g2p):
    cfg = g2p["repo"] / c.ROUTER_MODEL / "config.pbtxt"  # short stage deadlines for the fault test
    parsed = parse_config(cfg.read_text())
    parsed.parameters[c.PARAM_STAGE_TIMEOUT_S].string_value = "2.0"
    cfg.write_text(render_config(parsed))
    srv = TritonServer(g2p["repo"], startup_timeout_s=180)
    srv.start()
    yield srv
    srv.stop()


def _gen(g2p, role):
    return OnnxSeq2SeqGenerator(g2p["repo"] / role / "1", max_new_tokens=16)


def test_export_matches_pytorch_tokens_logits_and_energies(g2p):
    for rep in g2p["reports"]:
        p = rep.parity
        assert p.inputs == 100 and p.ok
        assert p.token_mismatches == 0 and p.tokenizer_mismatches == 0
        assert p.max_logit_diff <= 1e-4 and p.max_energy_diff <= 1e-4
    assert (g2p["repo"] / "swift" / "1" / "target_tokenizer" / "tokenizer.json").is_file()
    params = parse_config((g2p["repo"] / "elang" / "config.pbtxt").read_text()).parameters
    assert params[c.PARAM_TASK].string_value == c.TASK_GENERATE
    assert params[c.PARAM_MAX_TEXT_BYTES].string_value == "15"  # 16 source tokens: 15 characters and EOS


def test_token_energies_are_minus_logsumexp_of_pytorch_step_logits(g2p):
    model, src, _ = load_seq2seq(g2p["swift"])
    gen = _gen(g2p, "swift")
    words = g2p["splits"].test.inputs[:12]
    out = gen(words, keep_logits=True)
    ids, mask = gen.encode(words)
    with torch.inference_mode():
        ref = model.eval().generate(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=16,
            do_sample=False, output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    scores = torch.stack(ref.scores, 1).numpy()
    for row in range(len(words)):
        n = int(out.lengths[row])
        want = -torch.logsumexp(torch.tensor(scores[row, :n], dtype=torch.float64), -1).numpy()
        np.testing.assert_allclose(out.energies[row, :n], want, atol=1e-4)
        assert np.isnan(out.energies[row, n:]).all()
    np.testing.assert_allclose(token_energies(np.array([[0.0, 0.0]])), [-np.log(2)])


def test_rows_stop_at_their_own_eos_or_cap_and_keep_their_order(g2p):
    gen = _gen(g2p, "super")
    words = g2p["splits"].test.inputs[:40]
    batch = gen(words)
    assert len(set(batch.lengths.tolist())) > 1  # rows of different lengths in one batch
    for i, w in enumerate(words):  # each row as if generated alone
        alone = gen([w])
        assert alone.texts[0] == batch.texts[i]
        assert alone.token_ids[0].tolist() == batch.token_ids[i, : batch.lengths[i]].tolist()
    capped = gen(words[:5], max_new_tokens=[1, 2, 3, 16, 2])
    assert all(n <= cap for n, cap in zip(capped.lengths, [1, 2, 3, 16, 2])) and capped.lengths[0] == 1


def test_a_user_t5_with_one_shared_tokenizer_goes_the_same_way(g2p, tmp_path):
    user = tiny_user_t5(tmp_path / "user", g2p["splits"].train.inputs[:400])
    rep = export_seq2seq_stage(user, "swift", tmp_path / "repo", g2p["splits"].validation.inputs[:40])
    assert rep.parity.ok and rep.max_new_tokens == 40
    gen = OnnxSeq2SeqGenerator(tmp_path / "repo" / "swift" / "1", max_new_tokens=8)
    out = gen(["hello world", "a"])
    assert out.token_ids.shape[0] == 2 and all(isinstance(t, str) for t in out.texts)
    # one task per repository: a seq2seq export into a classifier repository is refused
    with pytest.raises(RepositoryError, match="one family"):
        from elang.export.classify.stage import export_stage

        export_stage(tmp_path / "none", "swift", tmp_path / "repo", sample_texts=["x"])


def test_a_user_t5_pair_with_sentencepiece_exports_with_parity_and_routes_per_row(g2p, tmp_path):
    """The path for a user's own T5 pair: Hugging Face folders with spiece.model and no tokenizer.json.
    The export converts the tokenizer, holds its ids to the SentencePiece model's and the greedy tokens
    to PyTorch's generate; the served router routes each row of a multi-row request exactly."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    corpus = [f"{w} {r[0]}" for w, r in zip(g2p["splits"].train.inputs[:2000], g2p["splits"].train.references)]
    pair = {role: tiny_sentencepiece_t5(tmp_path / role, corpus, seed=i) for i, role in enumerate(("swift", "super"))}
    assert not (pair["swift"] / "tokenizer.json").exists() and (pair["swift"] / "spiece.model").is_file()
    words = g2p["splits"].validation.inputs[:60]
    repo = tmp_path / "repo"
    for role, folder in pair.items():
        rep = export_seq2seq_stage(folder, role, repo, words, max_new_tokens=8)
        assert rep.parity.ok and rep.parity.tokenizer_mismatches == 0 and rep.parity.token_mismatches == 0, rep
    # Tokens identical to PyTorch's generate, checked here too on other words.
    test_words = g2p["splits"].test.inputs[:12]
    slow = AutoTokenizer.from_pretrained(pair["super"], use_fast=False)
    model = AutoModelForSeq2SeqLM.from_pretrained(pair["super"]).eval()
    enc = slow(test_words, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = model.generate(**enc, max_new_tokens=8, do_sample=False, num_beams=1)
    got = OnnxSeq2SeqGenerator(repo / "super" / "1", max_new_tokens=8)(test_words)
    for row in range(len(test_words)):
        n = int(got.lengths[row])  # EOS included; PyTorch's row starts with the decoder start token
        assert got.token_ids[row, :n].tolist() == want[row, 1 : 1 + n].tolist()
    swift_gen = OnnxSeq2SeqGenerator(repo / "swift" / "1", max_new_tokens=8)
    score = get_policy("mean").score(swift_gen(test_words).energies)
    with TritonServer(repo, startup_timeout_s=180) as srv:
        client = ElangClient(srv.grpc_url, timeout_s=30)
        for threshold in (np.inf, -np.inf, float(np.median(score))):
            res = client.generate(test_words, batch_size=5, threshold=threshold)  # 5 words per request
            assert [p.route for p in res.predictions] == (score > threshold).astype(int).tolist()
            assert all(p.ok for p in res.predictions)


def test_an_export_that_differs_from_pytorch_is_refused(g2p, tmp_path):
    out = export_onnx(g2p["swift"], tmp_path / "onnx")
    cfg = json.loads((out / "config.json").read_text())
    cfg["eos_token_id"] = 5  # the generator now stops elsewhere than PyTorch does
    (out / "config.json").write_text(json.dumps(cfg))
    rep = check_parity(g2p["swift"], out, g2p["splits"].validation.inputs[:30], 16, progress=False)
    assert not rep.ok and rep.token_mismatches > 0
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_seq2seq_stage(g2p["swift"], "swift", tmp_path / "r", g2p["splits"].validation.inputs[:30], atol=-1)
    assert not (tmp_path / "r" / "swift").exists()


def _offline(g2p, words, threshold):
    sw, su = _gen(g2p, "swift")(words), _gen(g2p, "super")(words)
    score = get_policy("mean").score(sw.energies)
    route = (score > threshold).astype(int)
    return route, [su.texts[i] if r else sw.texts[i] for i, r in enumerate(route)], score


@pytest.mark.parametrize("where", ["swift", "super", "middle"])
def test_routing_through_the_server_is_the_offline_cascade(g2p, server, where):
    words = g2p["splits"].test.inputs[:24]
    _, _, score = _offline(g2p, words, 0.0)
    threshold = {"swift": np.inf, "super": -np.inf, "middle": float(np.median(score))}[where]
    route, texts, score = _offline(g2p, words, threshold)
    client = ElangClient(server.grpc_url, timeout_s=30)
    res = client.generate(words, batch_size=7, threshold=threshold, references=g2p["splits"].test.references[:24])
    assert [p.route for p in res.predictions] == route.tolist()
    assert [p.output for p in res.predictions] == texts
    np.testing.assert_allclose([p.energy for p in res.predictions], score, atol=1e-4)
    assert res.stats.super_fraction == pytest.approx(route.mean())
    assert res.stats.accuracy is not None
    if where == "middle":
        assert 0 < route.sum() < len(words)
    for p in res.predictions:  # TOKEN_ENERGY is the answering stage's, one per generated token
        assert len(p.token_energies) == len(p.token_ids) and not np.isnan(p.token_energies).any()


def test_max_new_tokens_caps_each_request(g2p, server):
    client = ElangClient(server.grpc_url, timeout_s=30)
    out = client.generate_batch(g2p["splits"].test.inputs[:6], threshold="-inf", max_new_tokens=2)
    assert out[c.NUM_TOKENS].max() <= 2 and out[c.TOKEN_IDS].shape[1] <= 2
    with pytest.raises(ClientError, match="max_new_tokens must be >= 1"):
        client.generate_batch(["cat"], max_new_tokens=0)


def test_bad_inputs_get_a_clear_error_and_the_rest_are_served(g2p, server):
    cl = grpcclient.InferenceServerClient(server.grpc_url)

    def send(rows):
        inp = grpcclient.InferInput(c.TEXT, [len(rows), 1], "BYTES")
        inp.set_data_from_numpy(np.array([[r] for r in rows], dtype=np.object_))
        return cl.infer(c.ROUTER_MODEL, [inp])

    bad = {b"": "empty", b"\xff\xfeab": "not valid UTF-8", b"x" * 40: "over the limit of 15 bytes"}
    with ThreadPoolExecutor(4) as pool:
        good = pool.submit(send, [b"cat", b"house"])
        futures = {pool.submit(send, [b"ok", raw]): why for raw, why in bad.items()}
        for fut, why in futures.items():
            with pytest.raises(Exception, match=why):
                fut.result()
        assert good.result().as_numpy(c.OUTPUT_TEXT).shape == (2, 1)
    # the client refuses such texts before sending, per text, and serves the others
    res = ElangClient(server.grpc_url).generate(["cat", "", "x" * 40, "dog"])
    assert [p.ok for p in res.predictions] == [True, False, False, True]
    assert "over the limit of 15 bytes" in res.predictions[2].error


def test_a_hung_super_does_not_stall_swift_only_rows(g2p, server):
    def occupy() -> None:  # the Super's only instance sleeps 6 s
        cl = grpcclient.InferenceServerClient(server.grpc_url)
        inp = grpcclient.InferInput(c.TEXT, [1, 1], "BYTES")
        inp.set_data_from_numpy(encode_texts(["busy"]))
        try:
            cl.infer("super", [inp], parameters={c.FAULT_SLEEP_PARAM: "6"}, client_timeout=30)
        except Exception:  # noqa: BLE001 - only its side effect matters
            pass

    th = threading.Thread(target=occupy, daemon=True)
    th.start()
    time.sleep(0.3)
    client = ElangClient(server.grpc_url, timeout_s=30)
    with ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        late = pool.submit(client.generate_batch, ["escalated"], "-inf")
        time.sleep(0.2)
        for w in ("cat", "dog", "tree"):
            t1 = time.monotonic()
            out = client.generate_batch([w], "inf")
            assert out[c.ROUTE].ravel().tolist() == [0] and time.monotonic() - t1 < 1.0
        with pytest.raises(ClientError) as err:
            late.result()
        assert err.value.kind == "deadline" and "'super'" in str(err.value)
        assert time.monotonic() - t0 < 2.0 + 2.0
    th.join(15)


def test_generate_cli_prints_one_json_line_per_input(g2p, server, elang_cli, tmp_path):
    src = tmp_path / "words.txt"
    src.write_text("cat\nphoneme\n")
    out = elang_cli(
        "generate", "--url", server.grpc_url, str(src), "--json", "--threshold=-inf", "--max-new-tokens", "5"
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["input"] for r in rows] == ["cat", "phoneme"]
    assert all(r["route"] == 1 and isinstance(r["output"], str) and len(r["token_energies"]) <= 5 for r in rows)


def test_calibrate_a_seq2seq_repository_compares_aggregators_and_applies(g2p, elang_cli, tmp_path):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(g2p["repo"], repo)
    args = ["calibrate", "--repository", repo, "--sizes", "100,200,300", "--cache-dir", tmp_path / "cache"]
    out = elang_cli(*args, "--super-fraction", "0.3", "--evaluate-on", "test", "--apply", "--out", tmp_path / "cal")
    assert out.returncode == 0, out.stderr
    for name in ("first", "mean", "max", "sum", "quantile:0.9"):
        assert f"| {name} |" in out.stdout
    assert "on test (200 inputs)" in out.stdout
    from elang.calibration.record import read_record

    applied = read_record(repo / "elang")
    assert applied.task == "generate" and set(applied.stage_hashes) == {"swift", "super"}
    record = applied.payload
    params = parse_config((repo / "elang" / "config.pbtxt").read_text()).parameters
    assert params[c.PARAM_POLICY].string_value == record["criterion"]
    assert float(params[c.PARAM_THRESHOLD].string_value) == pytest.approx(record["threshold"])
    assert record["calibration"]["super_share"] == pytest.approx(0.3, abs=0.02)
    # a WER target with its margin, and a criterion that is not an aggregate of token energies
    out = elang_cli(*args, "--max-accuracy-drop", "50", "--criterion", "max", "--out", tmp_path / "cal2")
    assert out.returncode == 0, out.stderr
    assert "criterion max" in out.stdout
    cert = json.loads((tmp_path / "cal2" / "calibration.json").read_text())["calibration"]
    # the certificate of a WER-increase target bounds routed minus Super WER, not WER itself
    assert cert["certified_wer_bound"] is None
    assert cert["certified_wer_increase_bound"] <= 0.5 + 1e-9
    assert "routed WER at most" in out.stdout
    out = elang_cli(*args, "--super-fraction", "0.3", "--criterion", "energy", "--out", tmp_path / "cal3")
    assert out.returncode == 2 and "aggregate of token energies" in out.stderr


def test_bench_on_a_seq2seq_server_reports_wer_per_and_speed_up(g2p, server, elang_cli, tmp_path):
    out = elang_cli(
        "bench", "--url", server.grpc_url, "--concurrency", "1,4", "--limit", "24", "--chunks", "2",
        "--sizes", "100,200,300", "--report", tmp_path / "bench",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    rows = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert {r["config"] for r in rows} >= {"swift", "super", "elang"}
    assert all(r["answered"] == r["sent"] and r["per"] is not None for r in rows)
    assert {r["super_fraction"] for r in rows if r["config"] == "super"} == {1.0}
    text = (tmp_path / "bench" / "bench.md").read_text()
    assert "E-LANG" in text and "super WER" in text and "PER" in text


def test_io_binding_path_gives_the_same_answers_and_a_gpu_stage_config_parses(g2p, tmp_path):
    from elang.repository.generate import GeneratorSpec, write_generator
    from elang.runtimes.generator import generator_options

    words = g2p["splits"].test.inputs[:20]
    plain = _gen(g2p, "super")(words)
    bound = OnnxSeq2SeqGenerator(g2p["repo"] / "super" / "1", max_new_tokens=16, io_binding=True)
    assert bound.io_binding and bound.device == "cpu"  # "cuda" where the CUDA provider runs
    out = bound(words, max_new_tokens=[16, 3] * 10)
    capped = _gen(g2p, "super")(words, max_new_tokens=[16, 3] * 10)
    assert out.texts == capped.texts and (out.token_ids == capped.token_ids).all()
    np.testing.assert_allclose(out.energies, capped.energies, atol=1e-6)
    assert plain.texts[0] == out.texts[0]
    write_generator(tmp_path / "gpu", "super", GeneratorSpec(g2p["repo"] / "super" / "1", gpu=True))
    cfg = parse_config((tmp_path / "gpu" / "super" / "config.pbtxt").read_text())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_GPU
    assert params["providers"].startswith("CUDAExecutionProvider")
    opts = generator_options({**params, c.PARAM_IO_BINDING: "1"})
    assert opts["io_binding"] is True and opts["providers"][0] == "CUDAExecutionProvider"


def test_the_deep_health_check_probes_generating_stages_and_router(server):
    """`elang serve`'s supervisor and the Kubernetes liveness probe must see a seq2seq server as
    healthy (they used to find "no model takes TEXT and returns LOGITS" and call it unhealthy)."""
    stats = grpcclient.InferenceServerClient(server.grpc_url)

    def count(model: str) -> int:
        return int(stats.get_inference_statistics(model).model_stats[0].inference_count)

    before = {m: count(m) for m in ("swift", "super")}
    report = deep_check(server.http_url, timeout_s=30)
    assert report.healthy, report.summary()
    assert {ch.model: ch.status for ch in report.checks} == {"elang": "ok", "swift": "ok", "super": "ok"}
    # Each stage alone once, and the router escalated its probe to the Super (it runs the Swift
    # in its own process: inline_stage).
    assert {m: count(m) - before[m] for m in before} == {"swift": 1, "super": 2}


def test_a_dead_generating_stage_is_found_by_the_deep_check_and_healed_by_reload(g2p, tmp_path):
    """A seq2seq Super whose stub dies: the check names it (not the router), and the supervisor's
    in-place reload brings it back while the Swift keeps answering."""
    repo = tmp_path / "repo"
    shutil.copytree(g2p["repo"], repo)
    srv = TritonServer(repo, model_control="explicit", startup_timeout_s=180)
    srv.start()
    try:
        os.kill(srv.stub_pids(c.SUPER_MODEL)["super_0_0"], signal.SIGKILL)
        time.sleep(1.0)
        report = deep_check(srv.http_url, timeout_s=30)
        assert not report.healthy and report.failing() == ["super"], report.summary()
        assert {ch.model: ch.status for ch in report.checks}["swift"] == "ok"
        sup = Supervisor(srv, heal="reload", interval_s=0.5, failures=1, timeout_s=30, notify=lambda m: None)
        sup.step()  # one failed check is enough here: it reloads the Super
        assert sup.events and sup.events[0].action == "reload of super", [e.describe() for e in sup.events]
        assert sup.events[0].healed_s is not None, sup.events[0].describe()
        out = ElangClient(srv.grpc_url, timeout_s=30).generate_batch(["cat", "dog"], "-inf")
        assert out[c.ROUTE].ravel().tolist() == [1, 1]  # the Super generates again
    finally:
        srv.stop()


def test_the_router_runs_the_swift_inline_and_answers_as_over_bls(g2p, server, tmp_path):
    """The writer puts a copy of the generating Swift in the router (no BLS hop for every word);
    with `elang tune --inline off` the router calls it over BLS, and the answers are the same."""
    params = parse_config((g2p["repo"] / c.ROUTER_MODEL / "config.pbtxt").read_text()).parameters
    assert params[c.PARAM_INLINE_STAGE].string_value == "swift"
    assert (g2p["repo"] / c.ROUTER_MODEL / "1" / "swift" / c.INLINE_STAGE_FILE).is_file()
    words = g2p["splits"].test.inputs[:24]
    _, _, score = _offline(g2p, words, 0.0)
    threshold = float(np.median(score))
    stats = grpcclient.InferenceServerClient(server.grpc_url)
    before = stats.get_inference_statistics("swift").model_stats[0].inference_count
    inline = ElangClient(server.grpc_url, timeout_s=30).generate(words, batch_size=5, threshold=threshold)
    assert stats.get_inference_statistics("swift").model_stats[0].inference_count == before  # never called

    repo = tmp_path / "repo"
    shutil.copytree(g2p["repo"], repo)
    assert tune_repository(repo, inline=False) == [c.ROUTER_MODEL]
    assert not (repo / c.ROUTER_MODEL / "1" / "swift").exists()
    srv = TritonServer(repo, startup_timeout_s=180)
    srv.start()
    try:
        bls = ElangClient(srv.grpc_url, timeout_s=30).generate(words, batch_size=5, threshold=threshold)
    finally:
        srv.stop()
    assert [p.route for p in inline.predictions] == [p.route for p in bls.predictions]
    assert 0 < sum(p.route for p in inline.predictions) < len(words)
    assert [p.output for p in inline.predictions] == [p.output for p in bls.predictions]
    np.testing.assert_allclose([p.energy for p in inline.predictions], [p.energy for p in bls.predictions], atol=1e-5)


def test_a_min_margin_router_routes_each_row_on_its_least_token_margin(g2p, tmp_path):
    """The margin rule is served: the stages answer TOKEN_MARGIN, the router scores 1 - the least
    margin of Swift's tokens, and routes each row of a request as the offline cascade does."""
    from elang.repository.generate import write_generate_router
    from elang.repository.writer import RouterSpec

    words = g2p["splits"].test.inputs[:24]
    sw = _gen(g2p, "swift")(words, margins=True)
    score = get_policy("min-margin").score(np.stack([sw.energies, sw.margins], axis=-1))
    assert np.allclose(score, 1 - np.nanmin(sw.margins, axis=1))
    repo = tmp_path / "repo"
    shutil.copytree(g2p["repo"], repo)
    write_generate_router(repo, RouterSpec(policy="min-margin", threshold="0.5", max_new_tokens=16))
    srv = TritonServer(repo, startup_timeout_s=180)
    srv.start()
    try:
        client = ElangClient(srv.grpc_url, timeout_s=30)
        for threshold in (np.inf, -np.inf, float(np.median(score))):
            res = client.generate(words, batch_size=7, threshold=threshold)
            assert [p.route for p in res.predictions] == (score > threshold).astype(int).tolist(), threshold
            np.testing.assert_allclose([p.energy for p in res.predictions], score, atol=1e-5)
        assert 0 < sum(p.route for p in res.predictions) < len(words)
    finally:
        srv.stop()
    # Stages that answer no margins (an older export) cannot serve it: refused when written
    cfg_path = repo / "swift" / "config.pbtxt"
    cfg = parse_config(cfg_path.read_text())
    names = [o.name for o in cfg.output]
    del cfg.output[names.index(c.TOKEN_MARGIN)]
    cfg_path.write_text(render_config(cfg))
    with pytest.raises(RepositoryError, match="TOKEN_MARGIN"):
        write_generate_router(repo, RouterSpec(policy="min-margin", threshold="0.5", max_new_tokens=16))


def test_a_learned_rule_is_calibrated_applied_and_served_per_row(g2p, elang_cli, tmp_path):
    """calibrate --criterion learned fits a rule on Swift's token scores, --apply writes it, and the
    real server routes each row of a request on that rule's score, as the offline cascade does."""
    from elang.calibration.generate import Seq2SeqRecord
    from elang.calibration.record import read_record
    from elang.core.settings import RouterSettings
    from elang.repository.config import parameters

    repo = tmp_path / "repo"
    shutil.copytree(g2p["repo"], repo)
    cap = RouterSettings.from_parameters(parameters(parse_config((repo / "elang" / "config.pbtxt").read_text())))
    args = ["calibrate", "--repository", repo, "--sizes", "100,200,300", "--cache-dir", tmp_path / "cache"]
    # On CMUdict the tiny Super never fixes the tiny Swift: refused, naming why
    out = elang_cli(*args, "--super-fraction", "0.3", "--criterion", "learned", "--out", tmp_path / "cal0")
    assert out.returncode == 2 and "the Super never fixes a Swift mistake" in out.stderr
    # A user's file whose targets are the Super's outputs on every other word: the Super fixes those
    words = [w for w in g2p["splits"].train.inputs if w.isalpha()][:800]
    swift_out = OnnxSeq2SeqGenerator(repo / "swift" / "1", max_new_tokens=cap.max_new_tokens)(words).texts
    super_out = OnnxSeq2SeqGenerator(repo / "super" / "1", max_new_tokens=cap.max_new_tokens)(words).texts
    rows = [(w, b if i % 2 else a) for i, (w, a, b) in enumerate(zip(words, swift_out, super_out)) if a and b]
    data = tmp_path / "pairs.tsv"
    data.write_text("input\ttarget\n" + "".join(f"{w}\t{t}\n" for w, t in rows))
    args = ["calibrate", "--repository", repo, "--data", data, "--sizes", "100,100,400", "--cache-dir", tmp_path / "cache"]
    out = elang_cli(*args, "--super-fraction", "0.3", "--criterion", "learned", "--apply", "--out", tmp_path / "cal")
    assert out.returncode == 0, out.stderr
    assert "criterion learned" in out.stdout and "| learned (2-fold cross-fitted) |" in out.stdout
    applied = read_record(repo / "elang")
    assert applied.criterion == "learned" and applied.payload["rule"]["inputs"] == "tokens"
    assert "margin_min" in applied.payload["rule"]["features"]  # the stages declare TOKEN_MARGIN
    params = parse_config((repo / "elang" / "config.pbtxt").read_text()).parameters
    assert params[c.PARAM_POLICY].string_value == "learned"
    record = Seq2SeqRecord(**{k: v for k, v in applied.payload.items()})
    words = g2p["splits"].test.inputs[:24]
    sw = _gen(g2p, "swift")(words, margins=True)
    score = record.policy().score(np.stack([sw.energies, sw.margins], axis=-1))
    srv = TritonServer(repo, startup_timeout_s=180)
    srv.start()
    try:
        client = ElangClient(srv.grpc_url, timeout_s=30)
        for threshold in (None, np.inf, -np.inf, float(np.median(score))):
            res = client.generate(words, batch_size=7, threshold=threshold)
            thr = record.threshold if threshold is None else threshold
            assert [p.route for p in res.predictions] == (score > thr).astype(int).tolist(), threshold
            np.testing.assert_allclose([p.energy for p in res.predictions], score, atol=1e-5)
        assert 0 < sum(p.route for p in res.predictions) < len(words)
        supers = _gen(g2p, "super")(words).texts
        assert [p.output for p in res.predictions] == [s if r else w for w, s, r in zip(sw.texts, supers, score > thr)]
    finally:
        srv.stop()
