"""Prometheus metrics of the `elang` router, on Triton's metrics endpoint (pb_utils.MetricFamily).

Names (docs/OPERATIONS.md has PromQL for them):

* ``elang_routed_rows_total{model, route}``: texts answered per stage (``route`` = stage name),
  plus ``route="failed"`` for texts a stage could not answer;
* ``elang_requests_total{model, outcome}``: requests by ``ok`` / ``invalid`` (INVALID_ARG) /
  ``failed`` (a stage failed);
* ``elang_swift_energy{model}``: histogram of the first stage's energy (buckets from the
  ``energy_buckets`` config parameter);
* ``elang_super_fraction{model}``: share escalated among the last ``window_rows`` texts;
* ``elang_calibration_info{model, calibration_version, policy, threshold, temperature}``: 1;
* ``elang_router_executions_total{model}``: dynamic batches the router executed;
* ``elang_router_duration_us_total{model}``: time inside the router's execute;
* ``elang_stage_duration_us_total{model, stage}``: of that, time waiting for each stage (an
  inline stage's compute, a BLS stage's round trip). The rest is the router's own work.

Every metric update is a message from the Python stub to the server (a histogram takes one
per text), and it holds the stub's interpreter while it waits. So the router only queues its
updates; a background thread gathers them for ``metrics_interval_s`` (router parameter,
default 0.5 s) and sends one increment per counter, one gauge value and the histogram's
observations. The metrics trail the answers by up to that interval.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from elang.router import DEFAULT_ENERGY_BUCKETS, RouterSettings, SlidingFraction

DEFAULT_INTERVAL_S = 0.5


def energy_buckets(settings: RouterSettings) -> list[float]:
    raw = settings.extra.get("energy_buckets")
    if not raw:
        return list(DEFAULT_ENERGY_BUCKETS)
    try:
        buckets = sorted(float(x) for x in raw.split(","))
    except ValueError:
        raise ValueError(f"router parameter energy_buckets must be comma-separated numbers, got {raw!r}") from None
    return buckets


class RouterMetrics:
    def __init__(self, pb_utils: Any, model: str, settings: RouterSettings) -> None:
        fam = pb_utils.MetricFamily
        labels = {"model": model}
        rows = fam("elang_routed_rows_total", "Texts answered by each stage of the cascade", fam.COUNTER)
        self.rows = {r: rows.Metric(labels={**labels, "route": r}) for r in [*settings.stages, "failed"]}
        self.stages = settings.stages
        reqs = fam("elang_requests_total", "Requests to the router by outcome", fam.COUNTER)
        self.requests = {o: reqs.Metric(labels={**labels, "outcome": o}) for o in ("ok", "invalid", "failed")}
        hist = fam("elang_swift_energy", "Energy of the first stage's logits per text", fam.HISTOGRAM)
        self.energy = hist.Metric(labels=labels, buckets=energy_buckets(settings))
        gauge = fam("elang_super_fraction", "Share of recent texts escalated past the first stage", fam.GAUGE)
        self.fraction = gauge.Metric(labels=labels)
        window = int(settings.extra.get("window_rows", "1000"))
        self.window = SlidingFraction(window)
        info = fam("elang_calibration_info", "Routing settings the router runs with (value 1)", fam.GAUGE)
        self.info = info.Metric(
            labels={
                **labels,
                "calibration_version": settings.calibration_version,
                "policy": settings.policy,
                "threshold": ",".join(repr(t) for t in settings.thresholds),
                "temperature": repr(settings.temperature),
            }
        )
        self.info.set(1.0)
        execs = fam("elang_router_executions_total", "Dynamic batches executed by the router", fam.COUNTER)
        self.executions = execs.Metric(labels=labels)
        total = fam("elang_router_duration_us_total", "Microseconds inside the router's execute", fam.COUNTER)
        self.duration = total.Metric(labels=labels)
        stage = fam("elang_stage_duration_us_total", "Microseconds the router waited for each stage", fam.COUNTER)
        self.stage_duration = {s: stage.Metric(labels={**labels, "stage": s}) for s in settings.stages}
        # Families must outlive their metrics: Triton refuses updates once a family is garbage-collected.
        self.families = [rows, reqs, hist, gauge, info, execs, total, stage]
        self.logger = pb_utils.Logger
        self.interval_s = float(settings.extra.get("metrics_interval_s", DEFAULT_INTERVAL_S))
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="elang-metrics", daemon=True)
        self._thread.start()

    def observe(self, routes: np.ndarray, energies: np.ndarray) -> None:
        """Answered texts: their routes (stage index, -1 failed) and first-stage energies (queued)."""
        self._queue.put(("rows", np.array(routes, copy=True).ravel(), np.array(energies, copy=True).ravel()))

    def request(self, outcome: str, count: int = 1) -> None:
        """``count`` requests ended with ``outcome`` (queued)."""
        if count:
            self._queue.put(("requests", outcome, count))

    def timing(self, execute_s: float, stage_s: dict[str, float]) -> None:
        """One execute took ``execute_s`` seconds, ``stage_s[stage]`` of them waiting for each stage (queued)."""
        self._queue.put(("timing", execute_s, dict(stage_s)))

    def flush(self) -> None:
        """Block until every queued update was sent."""
        self._queue.join()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued and stop the thread (model finalize)."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _drain(self) -> None:
        """Wait for an update, let ``interval_s`` of updates gather, send them coalesced."""
        stop = False
        while not stop:
            items = [self._queue.get()]
            if items[0] is not None:
                time.sleep(self.interval_s)
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            stop = any(item is None for item in items)
            try:
                self._send([item for item in items if item is not None])
            except Exception as exc:  # noqa: BLE001 - a metric must never take the router down
                self.logger.log_warn(f"elang metrics update failed: {exc}")
            finally:
                for _ in items:
                    self._queue.task_done()

    def _send(self, items: list[tuple]) -> None:
        """One increment per counter, one gauge update, and the histogram's observations."""
        counts = {name: 0 for name in self.rows}
        outcomes = {name: 0 for name in self.requests}
        answered: list[np.ndarray] = []
        energies: list[np.ndarray] = []
        executions, execute_us = 0, 0.0
        stage_us = {name: 0.0 for name in self.stage_duration}
        for kind, a, b in items:
            if kind == "requests":
                outcomes[a] += b
                continue
            if kind == "timing":
                executions += 1
                execute_us += a * 1e6
                for name, seconds in b.items():
                    if name in stage_us:
                        stage_us[name] += seconds * 1e6
                continue
            for k, name in enumerate(self.stages):
                counts[name] += int(np.sum(a == k))
            counts["failed"] += int(np.sum(a < 0))
            answered.append(a[a >= 0])
            energies.append(b)
        errors = []
        timings = {"executions": executions, "duration": execute_us}
        metrics_by_name = {"executions": self.executions, "duration": self.duration}
        for metrics, values in (
            (self.rows, counts),
            (self.requests, outcomes),
            (self.stage_duration, stage_us),
            (metrics_by_name, timings),
        ):
            for name, n in values.items():
                if n:
                    try:
                        metrics[name].increment(n)
                    except Exception as exc:  # noqa: BLE001 - send the others, then report
                        errors.append(f"{name}: {exc}")
        for e in np.concatenate(energies) if energies else ():
            self.energy.observe(float(e))
        done = np.concatenate(answered) if answered else np.zeros(0)
        if done.size:
            self.fraction.set(self.window.add(done >= 1))
        if errors:
            raise RuntimeError("; ".join(errors))
