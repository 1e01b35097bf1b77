"""`elang bench --faults`: the served pair under steady load while its Super fails.

On a copy of the repository (Super written with fault injection on), a supervised server
(``elang.ops.supervisor``, the healing of ``elang serve``) takes ``concurrency`` closed-loop
workers of routed one-text requests, plus one probe that sends a text every 0.1 s with the
threshold forced to Swift. First ``baseline_s`` without faults, then ``duration_s`` during
which Super's stub is killed (SIGKILL, by PID) every ``kill_every_s`` and one Super call is
made to sleep ``slow_s``. Every request is accounted for: answered, failed with an error (by
kind), or lost (no answer at all: must be 0). Swift-only latency during the faults is
compared with the baseline, and each heal is reported with its time to heal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.client.admin import new_key
from elang.client.client import ClientError, ElangClient
from elang.client.stats import percentiles
from elang.core.routing import escalates_above
from elang.core.texts import encode_texts
from elang.ops.server import TritonServer
from elang.ops.supervisor import Supervisor
from elang.repository.writer import tune_repository


@dataclass
class Outcome:
    t: float  # seconds since the load started, when sent
    latency_s: float
    kind: str  # ok, or a ClientError kind
    route: int = -1
    stream: str = "load"  # load (routed) or probe (forced to Swift)
    message: str = ""


@dataclass
class FaultLog:
    events: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, t: float, what: str) -> None:
        with self.lock:
            self.events.append((t, what))


def _worker(
    url: str,
    texts: list[str],
    stop: threading.Event,
    t0: float,
    out: list,
    sent: list,
    threshold: str | None,
    stream: str,
    pause_s: float,
    timeout_s: float,
    lock: threading.Lock,
) -> None:

    client = ElangClient(url, timeout_s=timeout_s)
    rng = np.random.default_rng(abs(hash((stream, threading.get_ident()))) % 2**32)
    while not stop.is_set():
        text = texts[int(rng.integers(len(texts)))]
        start = time.monotonic()
        with lock:
            sent[0] += 1
        try:
            res = client.infer_batch([text], threshold)
            rec = Outcome(start - t0, time.monotonic() - start, "ok", int(res[c.ROUTE][0, 0]), stream)
        except ClientError as exc:
            rec = Outcome(start - t0, time.monotonic() - start, exc.kind, -1, stream, str(exc)[:300])
        with lock:
            out.append(rec)
        if pause_s or rec.kind != "ok":  # a sane client backs off after an error
            stop.wait(pause_s or 0.1)


def _slow_call(url: str, seconds: float) -> None:
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput(c.TEXT, [1, 1], "BYTES")
    inp.set_data_from_numpy(encode_texts(["a slow call injected by elang bench --faults"]))
    try:
        grpcclient.InferenceServerClient(url).infer(
            c.SUPER_MODEL, [inp], parameters={c.FAULT_SLEEP_PARAM: str(seconds)}, client_timeout=seconds + 60
        )
    except Exception:  # noqa: BLE001 - only its effect on Super matters
        pass


def run_fault_bench(
    repository: Path,
    texts: list[str],
    report_dir: Path,
    concurrency: int = 32,
    duration_s: float = 300.0,
    baseline_s: float = 60.0,
    kill_every_s: float = 60.0,
    slow_s: float = 20.0,
    stage_timeout_s: float = 10.0,
    heal: str = "auto",
    header: list[str] | None = None,
) -> int:
    """Run the fault benchmark; write faults.md and faults.json under ``report_dir``; 0 if nothing was lost."""
    from tqdm import tqdm

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="elang-faults-") as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(repository, repo)
        tune_repository(repo, fault_injection=True, stage_timeout_s=stage_timeout_s)
        # As plain `elang serve` runs it: model control explicit, the control API locked by a fresh
        # secret, the supervisor with serve's defaults (check every 5 s, heal after 2 failures).
        explicit = heal in ("reload", "auto")
        server = TritonServer(
            repo, model_control="explicit" if explicit else "none", admin_key=new_key() if explicit else None
        )
        notes: list[str] = []
        faults = FaultLog()
        with server:
            sup = Supervisor(server, heal=heal, notify=notes.append)
            sup.start()
            stop = threading.Event()
            lock = threading.Lock()
            out: list[Outcome] = []
            sent = [0]
            # A threshold that keeps every text on Swift under the router's policy (softmax
            # escalates below its threshold, energy and entropy above it).

            above = escalates_above(ElangClient(server.grpc_url).router_info().get(c.PARAM_POLICY) or "energy")
            swift_only = "inf" if above else "-inf"
            t0 = time.monotonic()
            workers = [
                threading.Thread(
                    target=_worker,
                    args=(server.grpc_url, texts, stop, t0, out, sent, None, "load", 0.0, 60.0, lock),
                    daemon=True,
                )
                for _ in range(concurrency)
            ]
            workers.append(
                threading.Thread(
                    target=_worker,
                    args=(server.grpc_url, texts, stop, t0, out, sent, swift_only, "probe", 0.1, 60.0, lock),
                    daemon=True,
                )
            )
            for w in workers:
                w.start()
            total = baseline_s + duration_s
            kills = [baseline_s + kill_every_s / 2 + k * kill_every_s for k in range(int(duration_s // kill_every_s))]
            slow_at = baseline_s + min(10.0, duration_s / 4)
            with tqdm(total=int(total), desc="bench --faults", unit="s") as bar:
                while (now := time.monotonic() - t0) < total:
                    if slow_at is not None and now >= slow_at:
                        threading.Thread(target=_slow_call, args=(server.grpc_url, slow_s), daemon=True).start()
                        faults.add(now, f"Super call made to sleep {slow_s:g} s")
                        slow_at = None
                    if kills and now >= kills[0]:
                        kills.pop(0)
                        pid = server.stub_pids(c.SUPER_MODEL).get(f"{c.SUPER_MODEL}_0_0")
                        if pid:
                            os.kill(pid, signal.SIGKILL)
                            faults.add(now, f"killed Super's stub (pid {pid})")
                        else:
                            faults.add(now, "no live Super stub to kill (still healing)")
                    time.sleep(0.2)
                    bar.update(int(time.monotonic() - t0) - bar.n)
            stop.set()
            for w in workers:
                w.join(90)
            hung = sum(w.is_alive() for w in workers)
            sup.stop()
            events = list(sup.events)
    result = summarize(out, sent[0], hung, baseline_s, events, faults.events, notes)
    text = fault_markdown(
        result, header or [], concurrency, duration_s, baseline_s, kill_every_s, slow_s, stage_timeout_s, heal
    )
    (report_dir / "faults.md").write_text(text)
    (report_dir / "faults.json").write_text(json.dumps(result, indent=2))
    print(text)
    return 0 if result["lost"] == 0 else 1


def summarize(out: list[Outcome], sent: int, hung: int, baseline_s: float, heals, faults, notes) -> dict:  # noqa: ANN001
    """Counts, latency by phase and stream, heal times."""

    def lat(rows: list[Outcome]) -> dict:
        p = percentiles([r.latency_s * 1e3 for r in rows])
        return {"n": len(rows), "p50_ms": p[50], "p99_ms": p[99]}

    load = [r for r in out if r.stream == "load"]
    probe = [r for r in out if r.stream == "probe"]
    kinds: dict[str, int] = {}
    for r in out:
        if r.kind != "ok":
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
    phases = {"baseline": lambda r: r.t < baseline_s, "faults": lambda r: r.t >= baseline_s}
    table = {}
    for name, inside in phases.items():
        table[name] = {
            "swift_only_probe": lat([r for r in probe if inside(r) and r.kind == "ok"]),
            "routed_to_swift": lat([r for r in load if inside(r) and r.kind == "ok" and r.route == 0]),
            "routed_to_super": lat([r for r in load if inside(r) and r.kind == "ok" and r.route >= 1]),
            "failed": sum(1 for r in out if inside(r) and r.kind != "ok"),
            "failed_swift_probe": sum(1 for r in probe if inside(r) and r.kind != "ok"),
        }
    examples = {}
    for r in out:
        if r.kind != "ok" and r.kind not in examples:
            examples[r.kind] = r.message
    return {
        "sent": sent,
        "answered": sum(1 for r in out if r.kind == "ok"),
        "failed": sum(kinds.values()),
        "failed_by_kind": kinds,
        "lost": sent - len(out),
        "hung_workers": hung,
        "phases": table,
        "heals": [
            {"detected_s": e.detected_s, "time_to_heal_s": e.time_to_heal_s, "action": e.action, "failing": e.failing}
            for e in heals
        ],
        "faults": [{"t_s": t, "what": w} for t, w in faults],
        "supervisor_log": notes,
        "error_examples": examples,
    }


def fault_markdown(
    r: dict,
    header: list[str],
    concurrency: int,
    duration_s: float,
    baseline_s: float,
    kill_every_s: float,
    slow_s: float,
    stage_timeout_s: float,
    heal: str,
) -> str:
    lines = [*(f"- {h}" for h in header)]
    lines.append(
        f"- load: {concurrency} closed-loop workers of one routed text each, plus a probe forced to Swift every "
        f"0.1 s; {baseline_s:.0f} s without faults, then {duration_s:.0f} s with Super's stub killed every "
        f"{kill_every_s:.0f} s and one Super call slowed by {slow_s:g} s; stage_timeout_s={stage_timeout_s:g}; "
        f"heal: {heal}"
    )
    lines += [
        "",
        "| sent | answered | failed with an error | lost (no answer) | failed by kind |",
        "|---|---|---|---|---|",
        f"| {r['sent']} | {r['answered']} | {r['failed']} | {r['lost']} | "
        + (", ".join(f"{k} {n}" for k, n in sorted(r["failed_by_kind"].items())) or "-")
        + " |",
        "",
        "| phase | Swift-only probe p50 / p99 ms | routed, answered by Swift p50 / p99 ms | answered by Super p50 / p99 ms | failed (probe) |",
        "|---|---|---|---|---|",
    ]
    for phase, row in r["phases"].items():

        def cell(d: dict) -> str:
            return f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} (n={d['n']})"

        lines.append(
            f"| {phase} | {cell(row['swift_only_probe'])} | {cell(row['routed_to_swift'])} | "
            f"{cell(row['routed_to_super'])} | {row['failed']} ({row['failed_swift_probe']}) |"
        )
    base, fault = r["phases"]["baseline"]["swift_only_probe"], r["phases"]["faults"]["swift_only_probe"]
    if base["n"] and fault["n"]:
        lines.append(
            f"\nSwift-only p99 during the faults / without: {fault['p99_ms']:.1f} / {base['p99_ms']:.1f} ms "
            f"= {fault['p99_ms'] / base['p99_ms']:.2f}x"
        )
    lines += ["", "| t s | fault |", "|---|---|", *(f"| {f['t_s']:.0f} | {f['what']} |" for f in r["faults"])]
    lines += ["", "| detected at s | action | time to heal s |", "|---|---|---|"]
    for h in r["heals"]:
        heal_s = "-" if h["time_to_heal_s"] is None else f"{h['time_to_heal_s']:.1f}"
        lines.append(f"| {h['detected_s']:.0f} | {h['action'] or 'none'} | {heal_s} |")
    if r["error_examples"]:
        lines += ["", "Example errors:", *(f"- {k}: `{m}`" for k, m in r["error_examples"].items())]
    return "\n".join(lines) + "\n"
