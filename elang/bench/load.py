"""The load generator: configurations, closed-loop load at each concurrency, their results."""

from __future__ import annotations

import itertools
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from elang import contract as c
from elang.client.client import ClientError, ElangClient
from elang.client.stats import percentiles
from elang.core.routing import escalates_above
from elang.data.seq2seq import row_errors
from elang.tasks import task_from_parameters


def machine_line() -> str:

    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, {date.today().isoformat()}"


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
    # CPU seconds the load generator itself spent (this process, every thread): on a machine that
    # also runs the server, the clients' share of the cores is taken from every system measured
    client_cpu_s: float = 0.0

    def merge(self, other: LoadResult) -> None:
        for f in ("sent", "answered", "failed", "timed_out", "wall_s", "edits", "ref_tokens", "client_cpu_s"):
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
    def client_cpu_share(self) -> float:
        """The load generator's CPU over the wall time of all this machine's cores."""
        cores = os.cpu_count() or 1
        return self.client_cpu_s / (self.wall_s * cores) if self.wall_s > 0 else float("nan")

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

    client = ElangClient(url, model=config.model, timeout_s=timeout_s)
    batches = [list(range(i, min(i + batch_size, len(texts)))) for i in range(0, len(texts), batch_size)]
    source = itertools.cycle(batches) if duration_s else iter(batches)
    lock = threading.Lock()
    res = LoadResult(config.name, concurrency)
    cpu0 = time.process_time()
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
    res.client_cpu_s = time.process_time() - cpu0
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


NO_ESCALATION = "elang@no-escalation"


FULL_DEPTH = "@full"  # a multi-exit router with every text sent to its last exit


def bench_configs(url: str, sweep: str | None, only: str | None = None) -> list[BenchConfig]:

    info = ElangClient(url).router_info()
    if task_from_parameters(info).family == "generation":  # a seq2seq repository: swift, super, the router
        configs = [BenchConfig(m, m, generate=True) for m in ("swift", "super", "elang")]
        configs.append(BenchConfig(NO_ESCALATION, "elang", "inf", generate=True))
        configs += [
            BenchConfig(f"elang@{t.strip()}", "elang", t.strip(), generate=True)
            for t in (sweep or "").split(",")
            if t.strip()
        ]
        return [cfg for cfg in configs if not only or cfg.name in {x.strip() for x in only.split(",")}]

    ready = ElangClient(url).ready_models()
    present = [m for m in ("swift", "super", "elang") if m in ready]
    missing = {"swift", "super", "elang"} - set(present)
    if missing:
        raise RuntimeError(f"the server at {url} lacks {sorted(missing)}; bench needs swift, super and elang")
    # Every static Super-only variant (super_int8, super_bf16, ...) and its router: the headline's
    # baseline is the fastest of them (elang.bench.report.fastest_super_only).
    variants = sorted(m for m in ready if m.startswith("super_") and not m.endswith(("_tokenizer", "_onnx")))
    present += [v for m in variants for v in (m, f"elang_{m}") if v in ready]
    configs = [BenchConfig(m, m) for m in present]
    # Other routers the server holds (multi-exit ones: elang_exits, ...), each also at full depth.

    for name in ElangClient(url).ready_models():
        if c.is_router(name) and name not in present:
            configs.append(BenchConfig(name, name))
            cascade = ElangClient(url, model=name).cascade()
            if cascade[1]:
                above = escalates_above(ElangClient(url, model=name).router_info().get("policy") or "softmax")
                configs.append(BenchConfig(f"{name}{FULL_DEPTH}", name, "-inf" if above else "inf"))
    # Router overhead: a threshold that escalates nothing under the router's policy
    # (+inf for energy/entropy, -inf for softmax, whose unsure side is below the threshold).

    above = escalates_above(ElangClient(url).router_info().get("policy") or "energy")
    configs.append(BenchConfig(NO_ESCALATION, "elang", "inf" if above else "-inf"))
    for thr in (sweep or "").split(","):
        if thr.strip():
            configs.append(BenchConfig(f"elang@{thr.strip()}", "elang", thr.strip()))
    if only:
        wanted = {x.strip() for x in only.split(",")}
        configs = [cfg for cfg in configs if cfg.name in wanted]
    return configs
