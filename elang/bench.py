"""Measurements through the real server (figures for the docs come from here).

``compare_stage_layouts``: one Python-backend model that tokenizes and runs ONNX Runtime
(``python-ort``) against the two-model ensemble tokenizer -> ONNX (``python-ensemble``),
same ONNX file, same server, requests interleaved so machine drift cancels.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.client.stats import percentiles
from elang.inputs import encode_texts
from elang.repository import ClassifierSpec, write_classifier

log = logging.getLogger(__name__)


def machine_line() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, {date.today().isoformat()}"


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

    from elang.server import TritonServer

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


def ideal_speedup(cost_ratio: float, super_fraction: float) -> float:
    """Upper bound of E-LANG's speed-up over Super only: 1 / (c_swift / c_super + f)."""
    if cost_ratio < 0 or not 0 <= super_fraction <= 1:
        raise ValueError(f"need cost_ratio >= 0 and super_fraction in [0, 1], got {cost_ratio}, {super_fraction}")
    return 1.0 / (cost_ratio + super_fraction)


@dataclass
class LoadResult:
    """One configuration at one concurrency: every request accounted for."""

    config: str
    concurrency: int
    sent: int = 0
    answered: int = 0
    failed: int = 0
    timed_out: int = 0
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    routes: list[int] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # multi-exit routers: the layer that answered each text
    correct: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    edits: int = 0  # generating systems: token edits to the closest reference (PER numerator)
    ref_tokens: int = 0  # ... and that reference's length (PER denominator)

    def merge(self, other: LoadResult) -> None:
        for f in ("sent", "answered", "failed", "timed_out", "wall_s", "edits", "ref_tokens"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.latencies_s += other.latencies_s
        self.routes += other.routes
        self.exits += other.exits
        self.correct += other.correct
        self.errors += other.errors[: max(0, 5 - len(self.errors))]

    @property
    def throughput(self) -> float:
        """Texts answered per second."""
        return len(self.routes) / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.correct else float("nan")

    @property
    def super_fraction(self) -> float:
        return float(np.mean(np.asarray(self.routes) >= 1)) if self.routes else float("nan")

    @property
    def per(self) -> float | None:
        """Generating systems: phoneme (token) error rate; None for classifiers."""
        return self.edits / self.ref_tokens if self.ref_tokens else None

    @property
    def mean_exit_layer(self) -> float | None:
        return float(np.mean(self.exits)) if self.exits else None

    def latency_ms(self) -> dict[float, float]:
        return percentiles(np.asarray(self.latencies_s) * 1e3)


@dataclass(frozen=True)
class BenchConfig:
    """A named way to answer: a model, and for a router an optional threshold override."""

    name: str
    model: str
    threshold: str | None = None
    generate: bool = False  # a seq2seq model: generate_batch, scored against references


def run_load(
    url: str,
    config: BenchConfig,
    texts: list[str],
    labels: np.ndarray | None,
    concurrency: int,
    batch_size: int = 1,
    timeout_s: float = 60.0,
    duration_s: float | None = None,
    references: list[list[str]] | None = None,
) -> LoadResult:
    """Send ``texts`` (cycling until ``duration_s`` when given) with ``concurrency`` requests in flight.

    A generating ``config`` is scored against ``references`` (every correct output per text)."""
    import itertools
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from elang.client.client import ClientError, ElangClient
    from elang.seq2seq_data import row_errors

    client = ElangClient(url, model=config.model, timeout_s=timeout_s)
    batches = [list(range(i, min(i + batch_size, len(texts)))) for i in range(0, len(texts), batch_size)]
    source = itertools.cycle(batches) if duration_s else iter(batches)
    lock = threading.Lock()
    res = LoadResult(config.name, concurrency)
    start = time.perf_counter()
    stop_at = start + duration_s if duration_s else None

    def worker() -> None:
        while True:
            with lock:
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                idx = next(source, None)
                if idx is None:
                    return
                res.sent += 1
            t0 = time.perf_counter()
            try:
                batch = [texts[i] for i in idx]
                if config.generate:
                    out = client.generate_batch(batch, config.threshold)
                else:
                    out = client.infer_batch(batch, config.threshold)
            except ClientError as exc:
                with lock:
                    if exc.kind == "deadline":
                        res.timed_out += 1
                    else:
                        res.failed += 1
                    if len(res.errors) < 5:
                        res.errors.append(str(exc))
                continue
            dt = time.perf_counter() - t0
            with lock:
                res.answered += 1
                res.latencies_s.append(dt)
                res.routes += out["ROUTE"].ravel().tolist()
                if "EXIT" in out:
                    res.exits += out["EXIT"].ravel().tolist()
                if labels is not None:
                    res.correct += (out["LABEL"].ravel() == labels[idx]).tolist()
                if references is not None:
                    for row, i in enumerate(idx):
                        raw = out[c.OUTPUT_TEXT][row, 0]
                        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                        bad, edits, length = row_errors(text, references[i])
                        res.correct.append(not bad)
                        res.edits += edits
                        res.ref_tokens += length

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    res.wall_s = time.perf_counter() - start
    return res


def run_bench(
    url: str,
    configs: list[BenchConfig],
    texts: list[str],
    labels: np.ndarray | None,
    concurrencies: tuple[int, ...] = (1, 8, 32),
    chunks: int = 4,
    batch_size: int = 1,
    references: list[list[str]] | None = None,
) -> dict[tuple[str, int], LoadResult]:
    """Every configuration at every concurrency over the same texts, interleaved chunk by chunk.

    The texts are cut into ``chunks`` parts; each part is sent through every configuration in
    a rotating order before the next part, so drift of the machine spreads over all of them.
    """
    from tqdm import tqdm

    results: dict[tuple[str, int], LoadResult] = {}
    parts = [list(range(len(texts)))[k::chunks] for k in range(chunks)]
    total = len(concurrencies) * len(parts) * len(configs)
    with tqdm(total=total, desc="bench", unit="run") as bar:
        for conc in concurrencies:
            for k, part in enumerate(parts):
                order = configs[k % len(configs) :] + configs[: k % len(configs)]
                for cfg in order:
                    sub_labels = None if labels is None else labels[part]
                    sub_refs = None if references is None else [references[i] for i in part]
                    r = run_load(url, cfg, [texts[i] for i in part], sub_labels, conc, batch_size, references=sub_refs)
                    results.setdefault((cfg.name, conc), LoadResult(cfg.name, conc)).merge(r)
                    bar.update(1)
    return results


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


def bench_markdown(
    results: dict[tuple[str, int], LoadResult], concurrencies: tuple[int, ...], router: str = "elang"
) -> tuple[str, list[str]]:
    """The results table and the summary lines (speed-up, ideal bound, router overhead)."""
    lines = [
        "| concurrency | system | texts/s | p50 ms | p95 ms | p99 ms | accuracy | Super fraction | mean exit layer "
        "| speed-up vs Super | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for conc in concurrencies:
        sup = results.get(("super", conc))
        for (name, cc), r in results.items():
            if cc != conc:
                continue
            lat = r.latency_ms()
            speed = r.throughput / sup.throughput if sup else float("nan")
            layer = "-" if r.mean_exit_layer is None else f"{r.mean_exit_layer:.2f}"
            lines.append(
                f"| {conc} | {name} | {r.throughput:.1f} | {lat[50]:.1f} | {lat[95]:.1f} | {lat[99]:.1f} | "
                f"{r.accuracy:.2%} | {r.super_fraction:.1%} | {layer} | {speed:.2f}x | {r.failed + r.timed_out} |"
            )
        for (name, cc), r in results.items():
            if cc == conc and r.per is not None:
                summary.append(f"concurrency {conc}: {name} WER {1 - r.accuracy:.2%} PER {r.per:.2%}")
        sw, el = results.get(("swift", conc)), results.get((router, conc))
        if sw and sup and el:
            ratio = sup.throughput / sw.throughput  # c_swift / c_super from measured costs
            bound = ideal_speedup(ratio, el.super_fraction)
            measured = el.throughput / sup.throughput
            summary.append(
                f"concurrency {conc}: E-LANG {measured:.2f}x Super-only throughput; ideal bound "
                f"1/({ratio:.3f} + {el.super_fraction:.3f}) = {bound:.2f}x; measured/ideal {measured / bound:.0%}"
            )
        for (name, cc), r in results.items():
            full = results.get((f"{name}{FULL_DEPTH}", conc))
            if cc == conc and full is not None and r.exits:
                summary.append(
                    f"concurrency {conc}: {name} {r.throughput / full.throughput:.2f}x its own full depth "
                    f"({r.accuracy - full.accuracy:+.2%} accuracy, mean exit layer {r.mean_exit_layer:.2f} of "
                    f"{max(full.exits)}), {r.throughput / sup.throughput if sup else float('nan'):.2f}x Super-only"
                )
        inf = results.get((NO_ESCALATION, conc))
        if sw and inf:
            over = inf.latency_ms()[50] / sw.latency_ms()[50] - 1
            summary.append(
                f"concurrency {conc}: router overhead (elang escalating nothing vs swift direct) p50 {over:+.1%}"
            )
    return "\n".join(lines), summary


def prom_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric ``name`` in Prometheus text format
    (``prometheus_client``'s parser: escaped quotes and commas in label values are fine)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def router_profile(metrics_text: str) -> dict[str, dict]:
    """Where each router's time went, from its counters on /metrics (docs/OPERATIONS.md).

    Per router model: executions and mean ms per ``execute``; the share of execute time spent
    in the first stage (which runs inside execute), the rest being the router's own work
    (parsing, routing, answers); and per stage: calls, texts per call and mean ms per call
    (later stages run outside execute, while the router takes its next batch).
    """
    prof: dict[str, dict] = {}

    def entry(model: str) -> dict:
        return prof.setdefault(model, {"stages": {}})

    for labels, v in prom_samples(metrics_text, "elang_router_executions_total"):
        entry(labels["model"])["executions"] = v
    for labels, v in prom_samples(metrics_text, "elang_router_duration_us_total"):
        entry(labels["model"])["duration_us"] = v
    for key in ("calls", "rows", "duration_us"):
        name = "elang_stage_duration_us_total" if key == "duration_us" else f"elang_stage_{key}_total"
        for labels, v in prom_samples(metrics_text, name):
            entry(labels["model"])["stages"].setdefault(labels["stage"], {})[key] = v
    out = {}
    for model, p in prof.items():
        n, total = p.get("executions", 0.0), p.get("duration_us", 0.0)
        if n <= 0 or total <= 0 or not p["stages"]:
            continue
        # The first stage sees every text, so it is the one with the most rows.
        first = max(p["stages"].values(), key=lambda st: st.get("rows", 0.0))
        first_share = min(1.0, first.get("duration_us", 0.0) / total)
        stages = {
            name: {
                "calls": int(st.get("calls", 0)),
                "rows_per_call": st.get("rows", 0) / st["calls"] if st.get("calls") else 0.0,
                "ms_per_call": st.get("duration_us", 0) / st["calls"] / 1e3 if st.get("calls") else 0.0,
            }
            for name, st in p["stages"].items()
        }
        out[model] = {
            "executions": int(n),
            "ms_per_execute": total / n / 1e3,
            "first_stage_share": first_share,
            "own_share": 1.0 - first_share,
            "stages": stages,
        }
    return out


def profile_markdown(profile: dict[str, dict]) -> str:
    if not profile:
        return ""
    lines = [
        "| router | executions | ms per execute | first stage's share | router's own share | stage calls: texts/call, ms/call |",
        "|---|---|---|---|---|---|",
    ]
    for model, p in sorted(profile.items()):
        calls = "; ".join(
            f"{name} {st['calls']}: {st['rows_per_call']:.1f}, {st['ms_per_call']:.2f}"
            for name, st in p["stages"].items()
        )
        lines.append(
            f"| {model} | {p['executions']} | {p['ms_per_execute']:.2f} | {p['first_stage_share']:.1%} | "
            f"{p['own_share']:.1%} | {calls} |"
        )
    return "\n".join(lines)


def plot_bench(results: dict[tuple[str, int], LoadResult], concurrencies: tuple[int, ...], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({n for n, _ in results})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        tps = [results[(name, c)].throughput if (name, c) in results else 0 for c in concurrencies]
        a1.bar(np.arange(len(concurrencies)) + i * width, tps, width, label=name)
        r = results.get((name, concurrencies[-1]))
        if r is not None:
            a2.scatter(r.throughput, r.accuracy * 100, label=name, s=50)
    a1.set_xticks(np.arange(len(concurrencies)) + width * (len(names) - 1) / 2, [str(c) for c in concurrencies])
    a1.set_xlabel("concurrent requests")
    a1.set_ylabel("texts / s")
    a1.legend(fontsize=7)
    a2.set_xlabel(f"texts / s at concurrency {concurrencies[-1]}")
    a2.set_ylabel("accuracy (%)")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


NO_ESCALATION = "elang@no-escalation"
FULL_DEPTH = "@full"  # a multi-exit router with every text sent to its last exit


def _configs(url: str, sweep: str | None, only: str | None = None) -> list[BenchConfig]:
    from elang.client.client import ElangClient
    from elang.routing import get_policy

    info = ElangClient(url).router_info()
    if info.get(c.PARAM_TASK) == c.TASK_GENERATE:  # a seq2seq repository: swift, super, the router
        configs = [BenchConfig(m, m, generate=True) for m in ("swift", "super", "elang")]
        configs.append(BenchConfig(NO_ESCALATION, "elang", "inf", generate=True))
        configs += [
            BenchConfig(f"elang@{t.strip()}", "elang", t.strip(), generate=True)
            for t in (sweep or "").split(",")
            if t.strip()
        ]
        return [cfg for cfg in configs if not only or cfg.name in {x.strip() for x in only.split(",")}]

    present = [
        m for m in ("swift", "super", "elang", "super_int8", "elang_super_int8") if ElangClient(url, model=m).is_ready()
    ]
    missing = {"swift", "super", "elang"} - set(present)
    if missing:
        raise RuntimeError(f"the server at {url} lacks {sorted(missing)}; bench needs swift, super and elang")
    configs = [BenchConfig(m, m) for m in present]
    # Other routers the server holds (multi-exit ones: elang_exits, ...), each also at full depth.

    for name in ElangClient(url).ready_models():
        if c.is_router(name) and name not in present:
            configs.append(BenchConfig(name, name))
            cascade = ElangClient(url, model=name).cascade()
            if cascade[1]:
                pol = get_policy(ElangClient(url, model=name).router_info().get("policy") or "softmax")
                configs.append(BenchConfig(f"{name}{FULL_DEPTH}", name, "-inf" if pol.escalate_above else "inf"))
    # Router overhead: a threshold that escalates nothing under the router's policy
    # (+inf for energy/entropy, -inf for softmax, whose unsure side is below the threshold).

    policy = get_policy(ElangClient(url).router_info().get("policy") or "energy")
    configs.append(BenchConfig(NO_ESCALATION, "elang", "inf" if policy.escalate_above else "-inf"))
    for thr in (sweep or "").split(","):
        if thr.strip():
            configs.append(BenchConfig(f"elang@{thr.strip()}", "elang", thr.strip()))
    if only:
        wanted = {x.strip() for x in only.split(",")}
        configs = [cfg for cfg in configs if cfg.name in wanted]
    return configs


def run_bench_command(args, test, command: str) -> int:  # noqa: ANN001 - argparse namespace, Dataset
    """`elang bench`: measure, then write bench.md/.png/.json under ``args.report``."""
    import contextlib
    import json

    from elang.server import TritonServer

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    if getattr(args, "faults", False):
        from elang.faultbench import run_fault_bench

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
            return _soak(url, pid, test, args, report, header)
        concs = tuple(int(x) for x in args.concurrency.split(","))
        configs = _configs(url, args.sweep, args.only)
        references = getattr(test, "references", None)
        results = run_bench(url, configs, test.texts, test.labels, concs, args.chunks, args.batch_size, references)
        profile = {}
        if args.repository:  # a server of our own: its counters cover exactly this run
            import urllib.request

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


def _soak(url: str, pid: int | None, test, args, report: Path, header: list[str]) -> int:  # noqa: ANN001
    import json
    import threading

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
    from elang.classifier import OnnxTextClassifier

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
