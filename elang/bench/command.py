"""`elang bench`: every configuration through the real server, interleaved, then the reports."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

from elang.bench.load import bench_configs, machine_line, run_bench
from elang.bench.report import bench_markdown, plot_bench, profile_markdown, router_profile
from elang.bench.soak import soak
from elang.ops.server import TritonServer


def run_bench_command(args, test, command: str) -> int:  # noqa: ANN001 - argparse namespace, Dataset
    """`elang bench`: measure, then write bench.md/.png/.json under ``args.report``."""

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    if getattr(args, "faults", False):
        from elang.bench.faults import run_fault_bench

        if not args.repository:
            raise ValueError("bench --faults needs --repository (it starts and supervises its own server)")
        header = [f"command: `{command}`", f"machine: {machine_line()}", f"texts: drawn from {len(test)} test texts"]
        return run_fault_bench(
            args.repository,
            test.texts,
            report,
            concurrency=args.fault_concurrency,
            duration_s=args.fault_duration,
            baseline_s=args.fault_baseline,
            kill_every_s=args.kill_every,
            slow_s=args.slow_s,
            stage_timeout_s=args.fault_stage_timeout,
            heal=args.heal,
            header=header,
        )
    with contextlib.ExitStack() as stack:
        pid = None
        url = args.url
        if args.repository:
            server = stack.enter_context(TritonServer(args.repository))
            url, pid = server.grpc_url, server.process.pid
        header = [f"command: `{command}`", f"machine: {machine_line()}", f"texts: {len(test)} from the test split"]
        if args.soak:
            return soak(url, pid, test, args, report, header)
        concs = tuple(int(x) for x in args.concurrency.split(","))
        configs = bench_configs(url, args.sweep, args.only)
        references = getattr(test, "references", None)
        results = run_bench(url, configs, test.texts, test.labels, concs, args.chunks, args.batch_size, references)
        profile = {}
        if args.repository:  # a server of our own: its counters cover exactly this run
            time.sleep(1.5)  # the routers send their metric updates every 0.5 s
            metrics_text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
            (report / "metrics.prom").write_text(metrics_text)  # raw, to recompute the profile
            profile = router_profile(metrics_text)
    table, summary = bench_markdown(results, concs)
    if profile:
        summary.append(
            "where the routers' time went (all configurations of this run, from the server's "
            "elang_*_duration_us_total counters):\n\n" + profile_markdown(profile) + "\n"
        )
    png = plot_bench(results, concs, report / "bench.png")
    text = "\n".join([*(f"- {h}" for h in header), "", table, "", *(f"- {s}" for s in summary), ""])
    (report / "bench.md").write_text(text)
    (report / "bench.json").write_text(
        json.dumps(
            [
                {
                    "config": r.config,
                    "concurrency": r.concurrency,
                    "sent": r.sent,
                    "answered": r.answered,
                    "failed": r.failed,
                    "timed_out": r.timed_out,
                    "throughput": r.throughput,
                    "latency_ms": {f"p{q}": v for q, v in r.latency_ms().items()},
                    "accuracy": r.accuracy,
                    "super_fraction": r.super_fraction,
                    "mean_exit_layer": r.mean_exit_layer,
                    "per": r.per,
                    "client_cpu_s": r.client_cpu_s,
                    "rows_per_exit": {str(k): int(v) for k, v in sorted(Counter(r.exits).items())},
                    "errors": r.errors,
                }
                for r in results.values()
            ],
            indent=2,
        )
    )
    if profile:
        (report / "router_profile.json").write_text(json.dumps(profile, indent=2))
    print(text)
    print(f"written: {report / 'bench.md'}, {png}, {report / 'bench.json'}")
    lost = sum(r.sent - r.answered - r.failed - r.timed_out for r in results.values())
    bad = sum(r.failed + r.timed_out for r in results.values())
    if lost or bad:
        print(f"{bad} requests failed or timed out, {lost} unaccounted", file=__import__("sys").stderr)
        return 1
    return 0
