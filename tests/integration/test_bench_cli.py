"""A short `elang bench` and soak against tiny models: the report's structure, every request answered."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def _bench(elang_cli, tiny_repo, data, report, *extra):
    return elang_cli("bench", "--repository", tiny_repo["repo"], "--data", data, "--report", report, *extra)


def test_bench_report(elang_cli, tiny_repo, labelled_csv, tmp_path):
    r = tmp_path / "r"
    out = _bench(elang_cli, tiny_repo, labelled_csv, r, "--concurrency", "1,4", "--chunks", "2", "--sweep", "-1.5")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((r / "bench.json").read_text())
    assert {"swift", "super", "elang", "elang@no-escalation", "elang@-1.5"} <= {row["config"] for row in rows}
    assert {row["concurrency"] for row in rows} == {1, 4}
    for row in rows:
        assert row["sent"] == row["answered"] > 0 and row["failed"] == row["timed_out"] == 0
        assert row["client_cpu_s"] > 0  # the load generator's own CPU, measured, not assumed
    md = (r / "bench.md").read_text()
    assert "machine:" in md and "ideal bound" in md and "router overhead" in md
    assert "the load generator's own CPU" in md
    assert (r / "bench.png").stat().st_size > 10_000
    # Where the router's time went, from the server's own counters.
    assert "where the routers' time went" in md
    prof = json.loads((r / "router_profile.json").read_text())["elang"]
    assert prof["executions"] > 0 and prof["ms_per_execute"] > 0
    assert 0 < prof["first_stage_share"] < 1 and prof["own_share"] == pytest.approx(1 - prof["first_stage_share"])
    assert prof["stages"]["swift"]["calls"] > 0 and prof["stages"]["super"]["calls"] > 0  # -1.5 escalates some
    assert prof["stages"]["super"]["ms_per_call"] > 0 and prof["stages"]["super"]["rows_per_call"] >= 1


def test_soak_accounts_for_every_request(elang_cli, tiny_repo, labelled_csv, tmp_path):
    out = _bench(elang_cli, tiny_repo, labelled_csv, tmp_path / "s", "--soak", "4", "--soak-concurrency", "16")
    assert out.returncode == 0, out.stderr[-2000:]
    md = (tmp_path / "s" / "soak.md").read_text()
    row = [line for line in md.splitlines() if line.startswith("| ") and "sent" not in line and "---" not in line][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    sent, answered, failed, timed_out, lost = map(int, cells[:5])
    assert sent == answered > 0 and failed == timed_out == lost == 0
    assert float(cells[8]) > 0  # RSS of the server we started


def test_bench_url_finds_the_served_routers_data_or_refuses(elang_cli, tiny_repo, labelled_csv, server, tmp_path):
    """`bench --url` without data options takes the data the served models were trained on from the
    router (its data_spec parameter, written from the repository's data.json), never the default corpus."""
    import shutil

    from elang.data.spec import DataSpec, save
    from elang.ops.server import TritonServer
    from elang.repository.config import parameters, read_config
    from elang.repository.writer import RouterSpec, write_router

    refused = elang_cli("bench", "--url", server.grpc_url, "--limit", "8", "--report", tmp_path / "r0")
    assert refused.returncode == 2 and "does not say which data" in refused.stderr, refused.stderr
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    spec = DataSpec(path=str(labelled_csv), sizes=(60, 60, 60))
    save(repo, spec, spec.splits())
    old = parameters(read_config(repo / "elang" / "config.pbtxt"))
    write_router(
        repo,
        RouterSpec(policy=old["policy"], threshold=old["threshold"], calibration_version=old["calibration_version"]),
        tuple(json.loads(old["labels"])),
    )
    assert json.loads(parameters(read_config(repo / "elang" / "config.pbtxt"))["data_spec"])["path"] == str(
        labelled_csv
    )
    with TritonServer(repo) as srv:
        out = elang_cli(
            "bench", "--url", srv.grpc_url, "--limit", "24", "--concurrency", "2", "--only", "swift,elang",
            "--report", tmp_path / "r1",
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "the served router's record" in out.stderr and str(labelled_csv) in out.stderr
    rows = json.loads((tmp_path / "r1" / "bench.json").read_text())
    assert rows and all(r["answered"] == 24 for r in rows if "answered" in r)


def test_bench_measures_every_super_variant_and_heads_against_the_fastest(elang_cli, tiny_repo, labelled_csv, tmp_path):
    """A repository with a static Super variant (here OpenVINO bf16, `--name super_bf16`): bench
    measures it and its router, and the headline names the fastest Super-only as its baseline."""
    import shutil

    from elang.export.classify.stage import export_stage
    from elang.export.classify.tiny import sample_rows

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    export_stage(
        tiny_repo["work"] / "super-checkpoint", "super", repo, sample_texts=[t for t, _ in sample_rows()],
        name="super_bf16", serving={"engine": "openvino", "precision": "bf16"},
    )  # fmt: skip
    out = _bench(elang_cli, {"repo": repo}, labelled_csv, tmp_path / "r", "--concurrency", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {row["config"]: row for row in json.loads((tmp_path / "r" / "bench.json").read_text())}
    assert {"super", "super_bf16", "elang", "elang_super_bf16"} <= set(rows)
    fastest = max(("super", "super_bf16"), key=lambda n: rows[n]["throughput"])
    md = (tmp_path / "r" / "bench.md").read_text()
    (line,) = [x for x in md.splitlines() if "headline" in x]
    assert f"the fastest Super-only ({fastest}," in line or "no cascade is within" in line, line
    assert "vs fastest Super-only" in md
