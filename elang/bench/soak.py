"""Soak and offline profiles: memory over time, per-stage tokenization vs ONNX time, stage layouts."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from elang.bench.load import BenchConfig, run_load
from elang.client.stats import percentiles
from elang.core.texts import encode_texts
from elang.ops.server import TritonServer
from elang.repository.writer import ClassifierSpec, write_classifier
from elang.runtimes.classifier import OnnxTextClassifier


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of ``pid`` and all its descendants (psutil)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # exited meanwhile
            continue
    return total / (1024 * 1024)


def rss_slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS (MB) over time in the second half of a soak, in MB per minute.

    The first half holds warm-up (arenas growing to the largest batches seen); a leak keeps
    growing after it.
    """
    late = samples[len(samples) // 2 :]
    if len(late) < 2:
        raise ValueError(f"need at least 4 RSS samples for a trend, got {len(samples)}")
    t = np.array([s for s, _ in late]) / 60.0
    if np.ptp(t) == 0:
        raise ValueError("the RSS samples have no time spread")
    return float(np.polyfit(t, np.array([r for _, r in late]), 1)[0])


def soak(url: str, pid: int | None, test, args, report: Path, header: list[str]) -> int:  # noqa: ANN001

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            if pid:
                samples.append((time.monotonic() - t0, process_tree_rss_mb(pid)))
            done.wait(max(1.0, args.soak / 20))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    res = run_load(
        url,
        BenchConfig("elang", "elang"),
        test.texts,
        test.labels,
        args.soak_concurrency,
        args.batch_size,
        duration_s=args.soak,
    )
    done.set()
    th.join()
    if pid:
        samples.append((args.soak, process_tree_rss_mb(pid)))
    lost = res.sent - res.answered - res.failed - res.timed_out
    lines = [
        *(f"- {h}" for h in header),
        f"- soak: {args.soak:.0f} s at concurrency {args.soak_concurrency}, {args.batch_size} text(s) per request",
        "",
        "| sent | answered | failed | timed out | unaccounted | texts/s | p50 ms | p99 ms | RSS start MB | RSS end MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lat = res.latency_ms()
    rss0 = f"{samples[0][1]:.0f}" if samples else "-"
    rss1 = f"{samples[-1][1]:.0f}" if samples else "-"
    lines.append(
        f"| {res.sent} | {res.answered} | {res.failed} | {res.timed_out} | {lost} | {res.throughput:.1f} | "
        f"{lat[50]:.1f} | {lat[99]:.1f} | {rss0} | {rss1} |"
    )
    if len(samples) >= 4:
        half = len(samples) // 2
        growth = np.mean([s for _, s in samples[half:]]) - np.mean([s for _, s in samples[:half]])
        lines.append(f"\nRSS second half minus first half: {growth:+.1f} MB (samples: {len(samples)})")
        lines.append(f"RSS trend over the second half: {rss_slope_mb_per_min(samples):+.2f} MB/min")
        lines += ["", "| t s | RSS MB |", "|---|---|", *(f"| {t:.0f} | {r:.0f} |" for t, r in samples)]
    text = "\n".join(lines) + "\n"
    (report / "soak.md").write_text(text)
    (report / "soak.json").write_text(json.dumps({"samples_rss_mb": samples, "errors": res.errors}, indent=2))
    print(text)
    return 0 if (res.failed + res.timed_out + lost) == 0 else 1


def profile_stage(
    model_dir: Path, texts: list[str], batch_sizes: tuple[int, ...] = (1, 8, 32), rounds: int = 20, max_length: int = 64
) -> list[dict]:
    """Where a stage's time goes offline: tokenization vs ONNX Runtime, per text, by batch size."""

    clf = OnnxTextClassifier(model_dir, max_length=max_length)
    rows = []
    for bs in batch_sizes:
        batch = (texts * (bs // max(1, len(texts)) + 1))[:bs]
        clf(batch)  # warm-up
        tok, run = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            feeds = clf.tokenizer(batch)
            t1 = time.perf_counter()
            clf.session.run(None, {n: feeds[n] for n in clf.input_names})
            t2 = time.perf_counter()
            tok.append(t1 - t0)
            run.append(t2 - t1)
        t, r = float(np.median(tok)), float(np.median(run))
        rows.append(
            {
                "batch": bs,
                "tokenize_ms_per_text": t / bs * 1e3,
                "onnx_ms_per_text": r / bs * 1e3,
                "tokenize_share": t / (t + r),
            }
        )
    return rows


def compare_stage_layouts(
    model_dir: Path,
    texts: list[str],
    batch_sizes: tuple[int, ...] = (1, 32),
    rounds: int = 100,
    max_length: int = 128,
) -> list[dict]:
    """p50/p95 latency of one request, per layout and batch size, measured through tritonserver."""
    import tritonclient.grpc as grpcclient
    from tqdm import tqdm

    layouts = {"python-ort": "stage_single", "python-ensemble": "stage_ensemble"}
    with tempfile.TemporaryDirectory(prefix="elang-layout-") as tmp:
        repo = Path(tmp) / "repo"
        for runtime, name in layouts.items():
            write_classifier(repo, name, ClassifierSpec(Path(model_dir), runtime=runtime, max_length=max_length))
        rows = []
        with TritonServer(repo) as server:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            for bs in batch_sizes:
                batch = (texts * (bs // len(texts) + 1))[:bs]
                inp = grpcclient.InferInput("TEXT", [bs, 1], "BYTES")
                inp.set_data_from_numpy(encode_texts(batch))
                for name in layouts.values():  # warm-up
                    for _ in range(3):
                        client.infer(name, [inp])
                times: dict[str, list[float]] = {n: [] for n in layouts.values()}
                for _ in tqdm(range(rounds), desc=f"batch {bs}", unit="round"):
                    for name in layouts.values():
                        t0 = time.perf_counter()
                        client.infer(name, [inp])
                        times[name].append(time.perf_counter() - t0)
                for runtime, name in layouts.items():
                    p = percentiles(np.array(times[name]) * 1e3, (50, 95))
                    rows.append({"layout": runtime, "batch": bs, "p50_ms": p[50], "p95_ms": p[95]})
    return rows


def format_layout_table(rows: list[dict]) -> str:
    lines = ["| batch | layout | p50 ms | p95 ms | p50 vs python-ort |", "|---|---|---|---|---|"]
    base = {r["batch"]: r["p50_ms"] for r in rows if r["layout"] == "python-ort"}
    for r in rows:
        ratio = r["p50_ms"] / base[r["batch"]]
        lines.append(f"| {r['batch']} | {r['layout']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {ratio:.2f}x |")
    return "\n".join(lines)


# ---------------------------------------------------------------- load through the server
