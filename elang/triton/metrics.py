"""Prometheus metrics of the `elang` router, on Triton's metrics endpoint (pb_utils.MetricFamily).

Names (docs/OPERATIONS.md has PromQL for them):

* ``elang_routed_rows_total{model, route}``: texts of answered requests, per stage that answered;
* ``elang_failed_rows_total{model, stage, reason}``: texts of requests that got an error, by
  the stage that failed them and why (``deadline``, ``overloaded``, ``cancelled``, ``error``);
* ``elang_requests_total{model, outcome}``: requests by ``ok`` / ``invalid`` (INVALID_ARG) or
  the failure reason above;
* ``elang_swift_energy{model}``: histogram of the first stage's energy of answered texts
  (buckets from the ``energy_buckets`` config parameter);
* ``elang_super_fraction{model}``: share escalated among the last ``window_rows`` answered texts;
* ``elang_calibration_info{model, calibration_version, policy, threshold, temperature, stale}``: 1;
  ``stale`` names the stages whose model files changed since the calibration (empty: current);
* ``elang_router_executions_total{model}`` / ``elang_router_duration_us_total{model}``:
  dynamic batches executed, time inside ``execute`` (stage 0 included, later stages not);
* ``elang_stage_calls_total{model, stage}``, ``elang_stage_rows_total{model, stage}``,
  ``elang_stage_duration_us_total{model, stage}``: calls to each stage, rows sent, and
  time from sending to answer (an inline stage's compute, a BLS stage's round trip);
* ``elang_stage_queue_rows{model, stage}`` / ``elang_stage_inflight{model, stage}``: rows
  waiting in the router for a stage, calls outstanding (gauges);
* ``elang_stage_abandoned_total{model, stage}``: calls the router stopped waiting for at
  their deadline (the stage may still be running them).

Every metric update is a message from the Python stub to the server (a histogram takes one
per text), and it holds the stub's interpreter while it waits. So the router only queues its
updates; a background thread gathers them for ``metrics_interval_s`` (router parameter,
default 0.5 s) and sends one increment per counter, one value per gauge and the histogram's
observations. The metrics trail the answers by up to that interval.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from elang.core.execution import FailureKind
from elang.core.settings import DEFAULT_ENERGY_BUCKETS, RouterSettings, SlidingFraction

DEFAULT_INTERVAL_S = 0.5
OUTCOMES = ("ok", "invalid", *(k.value for k in FailureKind))


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
    def __init__(self, pb_utils: Any, model: str, settings: RouterSettings, stale: list[str] | None = None) -> None:
        fam = pb_utils.MetricFamily
        labels = {"model": model}
        self.stages = settings.stages

        def per_stage(family: Any, **extra: str) -> dict[str, Any]:
            return {s: family.Metric(labels={**labels, "stage": s, **extra}) for s in settings.stages}

        rows = fam("elang_routed_rows_total", "Texts of answered requests, by the stage that answered", fam.COUNTER)
        self.rows = {s: rows.Metric(labels={**labels, "route": s}) for s in settings.stages}
        failed = fam("elang_failed_rows_total", "Texts of failed requests, by failing stage and reason", fam.COUNTER)
        self.failed_rows = {
            (s, k.value): failed.Metric(labels={**labels, "stage": s, "reason": k.value})
            for s in settings.stages
            for k in FailureKind
        }
        reqs = fam("elang_requests_total", "Requests to the router by outcome", fam.COUNTER)
        self.requests = {o: reqs.Metric(labels={**labels, "outcome": o}) for o in OUTCOMES}
        hist = fam("elang_swift_energy", "Energy of the first stage's logits per answered text", fam.HISTOGRAM)
        self.energy = hist.Metric(labels=labels, buckets=energy_buckets(settings))
        gauge = fam("elang_super_fraction", "Share of recent texts escalated past the first stage", fam.GAUGE)
        self.fraction = gauge.Metric(labels=labels)
        self.window = SlidingFraction(int(settings.extra.get("window_rows", "1000")))
        info = fam("elang_calibration_info", "Routing settings the router runs with (value 1)", fam.GAUGE)
        self.info = info.Metric(
            labels={
                **labels,
                "calibration_version": settings.calibration_version,
                "policy": settings.policy,
                "threshold": ",".join(repr(t) for t in settings.thresholds),
                "temperature": repr(settings.temperature),
                "stale": ",".join(stale or ()),
            }
        )
        self.info.set(1.0)
        execs = fam("elang_router_executions_total", "Dynamic batches executed by the router", fam.COUNTER)
        self.executions = execs.Metric(labels=labels)
        total = fam("elang_router_duration_us_total", "Microseconds inside the router's execute", fam.COUNTER)
        self.duration = total.Metric(labels=labels)
        calls = fam("elang_stage_calls_total", "Calls the router made to each stage", fam.COUNTER)
        stage_rows = fam("elang_stage_rows_total", "Texts the router sent to each stage", fam.COUNTER)
        stage_us = fam("elang_stage_duration_us_total", "Microseconds from call to answer, per stage", fam.COUNTER)
        self.stage = {"calls": per_stage(calls), "rows": per_stage(stage_rows), "us": per_stage(stage_us)}
        queued = fam("elang_stage_queue_rows", "Texts waiting in the router for each stage", fam.GAUGE)
        inflight = fam("elang_stage_inflight", "Calls outstanding to each stage", fam.GAUGE)
        abandoned = fam("elang_stage_abandoned_total", "Calls given up at their deadline", fam.COUNTER)
        self.gauges = {"queued_rows": per_stage(queued), "inflight": per_stage(inflight)}
        self.abandoned = per_stage(abandoned)
        self._abandoned_sent = dict.fromkeys(settings.stages, 0)
        # Families must outlive their metrics: Triton refuses updates once a family is garbage-collected.
        self.families = [rows, failed, reqs, hist, gauge, info, execs, total, calls, stage_rows, stage_us]
        self.families += [queued, inflight, abandoned]
        self.logger = pb_utils.Logger
        self.interval_s = float(settings.extra.get("metrics_interval_s", DEFAULT_INTERVAL_S))
        self._executor: Any = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="elang-metrics", daemon=True)
        self._thread.start()

    # Updates (thread-safe: they are queued) ------------------------------------------
    def answered(self, routes: np.ndarray, energies: np.ndarray) -> None:
        """An answered request: its texts' routes (stage index) and first-stage energies."""
        self._queue.put(("answered", np.array(routes, copy=True).ravel(), np.array(energies, copy=True).ravel()))

    def failed(self, rows: int, stage: str, reason: str) -> None:
        """A request of ``rows`` texts failed at ``stage`` for ``reason`` (a FailureKind value)."""
        self._queue.put(("failed", rows, (stage, reason)))

    def request(self, outcome: str, count: int = 1) -> None:
        """``count`` requests ended with ``outcome``."""
        if count:
            self._queue.put(("requests", outcome, count))

    def timing(self, execute_s: float) -> None:
        """One execute took ``execute_s`` seconds."""
        self._queue.put(("timing", execute_s, None))

    def stage_call(self, stage: str, seconds: float, rows: int) -> None:
        """A call to ``stage`` with ``rows`` texts took ``seconds`` (elang.core.execution.StageObserver)."""
        self._queue.put(("stage", stage, (seconds, rows)))

    def watch(self, executor: Any) -> None:
        """Read ``executor.snapshot()`` for the queue and in-flight gauges at every send."""
        self._executor = executor

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
        """One increment per counter, one value per gauge, and the histogram's observations."""
        inc = _Increments()
        answered: list[np.ndarray] = []
        energies: list[np.ndarray] = []
        for kind, a, b in items:
            if kind == "requests":
                inc[self.requests[a]] += b
            elif kind == "timing":
                inc[self.executions] += 1
                inc[self.duration] += a * 1e6
            elif kind == "stage" and a in self.stage["calls"]:
                inc[self.stage["calls"][a]] += 1
                inc[self.stage["rows"][a]] += b[1]
                inc[self.stage["us"][a]] += b[0] * 1e6
            elif kind == "failed":
                inc[self.failed_rows[b]] += a
                inc[self.requests[b[1]]] += 1
            elif kind == "answered":
                for k, name in enumerate(self.stages):
                    inc[self.rows[name]] += int(np.sum(a == k))
                inc[self.requests["ok"]] += 1
                answered.append(a)
                energies.append(b)
        errors = []
        if self._executor is not None:
            for stage, snap in self._executor.snapshot().items():
                if stage not in self.abandoned:
                    continue
                for key, metrics in self.gauges.items():
                    metrics[stage].set(float(snap[key]))
                inc[self.abandoned[stage]] += snap["abandoned"] - self._abandoned_sent[stage]
                self._abandoned_sent[stage] = snap["abandoned"]
        for metric, n in inc.items():
            if n:
                try:
                    metric.increment(n)
                except Exception as exc:  # noqa: BLE001 - send the others, then report
                    errors.append(str(exc))
        for e in np.concatenate(energies) if energies else ():
            self.energy.observe(float(e))
        done = np.concatenate(answered) if answered else np.zeros(0)
        if done.size:
            self.fraction.set(self.window.add(done >= 1))
        if errors:
            raise RuntimeError("; ".join(errors))


class _Increments:
    """Increments gathered per metric object (keyed by identity: Triton's metrics need not hash)."""

    def __init__(self) -> None:
        self._values: dict[int, list] = {}

    def __getitem__(self, metric: Any) -> float:
        return self._values.get(id(metric), [metric, 0.0])[1]

    def __setitem__(self, metric: Any, value: float) -> None:
        self._values[id(metric)] = [metric, value]

    def items(self) -> list[tuple[Any, float]]:
        return [(m, v) for m, v in self._values.values()]
