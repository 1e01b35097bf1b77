"""Deep health check: one text through every stage of a running server.

Triton's own ``/v2/health/live`` and ``/v2/health/ready`` keep answering 200 when a model's
Python stub process has died (the 2.51 Python backend does not restart it), so they cannot
tell a pod that fails every escalated text from a healthy one. This check sends one short
text, over HTTP, to every ready model that takes ``TEXT`` and returns ``LOGITS`` (each
stage alone) and to every router with a threshold that escalates through every stage;
generating models (``TEXT`` in, ``OUTPUT_TEXT`` out: seq2seq stages and their router) get one
short word and a cap of a few new tokens.

Each model ends as one of:

* ``ok``;
* ``overloaded``: a queue refused the probe (it carries a queue timeout): the server is
  alive and busy, which is no reason to restart it;
* ``slow``: no answer within the timeout (a hung stage, or overload beyond the queues);
* ``broken``: an error (a dead stub: "Stub process ... is not healthy", a model that
  failed to load) or no server at all;
* ``remote``: a router whose stage on another server (``remote_stages``) failed: reported,
  but this server stays healthy (restarting it cannot heal the other one, whose own probe
  does).

``healthy`` is False when any model is broken, or slow unless ``slow_is_alive``. Used by
``elang health`` (the Kubernetes liveness probe: ``python -m elang.ops.health``) and by the
supervisor in ``elang serve``. Only the standard library and ``elang.contract`` are
imported, so a probe process starts fast.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from elang import contract as c
from elang.client.admin import ADMIN_KEY_ENV, ADMIN_KEY_FILE_ENV, admin_headers
from elang.repository.config import json_parameters

REMOTE_ERROR = re.compile(r"remote stage '[^']+' at grpcs?://")

PROBE_TEXT = "elang health check: is every stage answering?"
_STUB = re.compile(r"Stub process '(.+?)_\d+_\d+' is not healthy")


@dataclass
class ModelCheck:
    model: str
    status: str  # ok / overloaded / slow / broken / remote (a stage on another server failed)
    seconds: float
    message: str = ""


@dataclass
class HealthReport:
    live: bool
    checks: list[ModelCheck] = field(default_factory=list)
    error: str = ""
    slow_is_alive: bool = False

    @property
    def healthy(self) -> bool:
        bad = {"broken"} if self.slow_is_alive else {"broken", "slow"}
        return self.live and not self.error and not any(ch.status in bad for ch in self.checks)

    @property
    def broken(self) -> bool:
        """No server, or a model that answered with an error (a dead stub, a failed load)."""
        return not self.live or bool(self.error) or any(ch.status == "broken" for ch in self.checks)

    @property
    def slow(self) -> bool:
        return any(ch.status == "slow" for ch in self.checks)

    def failing(self) -> list[str]:
        """Models to reload: those whose stub a message names as dead, and those that failed on
        their own. A router that failed only because a stage failed (its message names the
        stage, which failed its own check too) is left alone."""
        bad = {ch.model for ch in self.checks if ch.status in ("broken", "slow")}
        stages_bad = any(not c.is_router(m) for m in bad)
        names = [m for ch in self.checks for m in _STUB.findall(ch.message)]
        for ch in self.checks:
            if ch.model not in bad:
                continue
            if c.is_router(ch.model) and stages_bad:
                continue  # a router fails when its stages do: heal the stage
            names.append(ch.model)
        return list(dict.fromkeys(names))

    def summary(self) -> str:
        if not self.live or self.error:
            return f"UNHEALTHY: {self.error or 'server not live'}"
        parts = [f"{ch.model} {ch.status} ({ch.seconds * 1e3:.0f} ms)" for ch in self.checks]
        word = "healthy" if self.healthy else "UNHEALTHY"
        lines = [f"{word}: " + ", ".join(parts)]
        lines += [f"  {ch.model}: {ch.message}" for ch in self.checks if ch.status != "ok" and ch.message]
        return "\n".join(lines)


def _http(
    url: str, body: dict | None = None, timeout_s: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, dict | list | str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read().decode(errors="replace")
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(errors="replace"), exc.code
    try:
        return status, json.loads(raw) if raw else ""
    except json.JSONDecodeError:
        return status, raw


PROBE_WORD = "probe"  # what a generating model is sent (a seq2seq stage's inputs can be short: G2P takes words)
PROBE_NEW_TOKENS = 4  # a generating model's probe stops after this many tokens: alive, not a benchmark


def _probe_body(config: dict) -> dict | None:
    """The request that sends a probe through this model, or None if it takes no TEXT.

    A classifier (stage or router) returns LOGITS; a generating one (seq2seq stage or router)
    returns OUTPUT_TEXT and is asked for at most PROBE_NEW_TOKENS tokens."""
    inputs = {t["name"] for t in config.get("input", [])}
    outputs = {t["name"] for t in config.get("output", [])}
    generates = c.OUTPUT_TEXT in outputs
    if c.TEXT not in inputs or not (c.LOGITS in outputs or generates):
        return None
    text = PROBE_WORD if generates else PROBE_TEXT
    body: dict = {
        "inputs": [{"name": c.TEXT, "shape": [1, 1], "datatype": "BYTES", "data": [text]}],
        "outputs": [{"name": c.OUTPUT_TEXT if generates else c.LOGITS}],
        "parameters": {},
    }
    params = json_parameters(config)
    if generates and c.MAX_NEW_TOKENS in inputs:  # a generating stage: the cap is an input
        cap = {"name": c.MAX_NEW_TOKENS, "shape": [1, 1], "datatype": "INT32", "data": [PROBE_NEW_TOKENS]}
        body["inputs"].append(cap)
    elif generates:  # a generating router: the cap is a request parameter
        body["parameters"][c.MAX_NEW_TOKENS_PARAM] = PROBE_NEW_TOKENS
    if c.ROUTE in outputs and c.PARAM_STAGES in params:  # a router: escalate through every stage
        steps = len(c.parse_stages(params[c.PARAM_STAGES])) - 1
        unsure_below = params.get(c.PARAM_POLICY, "energy") == "softmax"
        body["parameters"][c.THRESHOLD_PARAM] = ",".join(["inf" if unsure_below else "-inf"] * max(steps, 1))
    return body


def check_model(
    http_url: str, model: str, config: dict, timeout_s: float, headers: dict[str, str] | None = None
) -> ModelCheck | None:
    body = _probe_body(config)
    if body is None:
        return None
    # Queue wait bounded below the probe's own timeout: a busy server refuses the probe at once
    # ("overloaded") instead of letting it time out as if hung.
    body["parameters"]["timeout"] = int(timeout_s * 0.5 * 1e6)
    t0 = time.monotonic()
    try:
        status, out = _http(f"http://{http_url}/v2/models/{model}/infer", body, timeout_s, headers)
    except TimeoutError:
        return ModelCheck(model, "slow", time.monotonic() - t0, f"no answer within {timeout_s:g} s")
    except (urllib.error.URLError, OSError) as exc:
        return ModelCheck(model, "broken", time.monotonic() - t0, f"request failed: {exc}")
    dt = time.monotonic() - t0
    if status == 200:
        return ModelCheck(model, "ok", dt)
    msg = out.get("error", str(out)) if isinstance(out, dict) else str(out)
    if REMOTE_ERROR.search(msg):  # a stage on another server failed: restarting this one cannot fix it
        return ModelCheck(model, "remote", dt, msg)
    if c.DEADLINE_ERROR.search(msg):  # waited out its deadline in a queue: a stage that does not answer
        return ModelCheck(model, "slow", dt, msg)
    if c.OVERLOAD_ERROR.search(msg):
        return ModelCheck(model, "overloaded", dt, msg)
    if "stage_timeout_s" in msg or "timeout" in msg.lower():
        return ModelCheck(model, "slow", dt, msg)
    return ModelCheck(model, "broken", dt, msg)


def deep_check(
    http_url: str, timeout_s: float = 10.0, slow_is_alive: bool = False, admin_key: str | None = None
) -> HealthReport:
    """Check the server at ``http_url`` (HOST:PORT of its HTTP endpoint): every model its repository
    lists must be ready, and every text model answers a probe. ``admin_key``: the control API's
    secret (default: found as ``elang.client.admin.find_admin_key`` finds it) for the index."""
    http_url = http_url.removeprefix("http://")
    report = HealthReport(live=False, slow_is_alive=slow_is_alive)
    headers = admin_headers(http_url, admin_key, "http")
    try:
        status, _ = _http(f"http://{http_url}/v2/health/live", timeout_s=timeout_s, headers=headers)
        report.live = status == 200
        status, index = _http(f"http://{http_url}/v2/repository/index", {}, timeout_s, headers)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        report.error = f"no server at http://{http_url}: {exc}"
        return report
    if not report.live:
        report.error = f"http://{http_url}/v2/health/live answered {status}"
        return report
    if status != 200 or not isinstance(index, list):
        hint = (
            f"; the index is restricted: give the server's secret ({ADMIN_KEY_ENV}, {ADMIN_KEY_FILE_ENV} or "
            "the file elang serve wrote for this port)"
            if status == 403 and not headers
            else ""
        )
        report.error = f"repository index failed ({status}): {index}{hint}"
        return report
    ready = [m["name"] for m in index if m.get("state") == "READY"]
    # Every model the repository lists must be loaded: an unloaded router is a failure, not a skip.
    report.checks = [
        ModelCheck(m["name"], "broken", 0.0, f"not ready ({m.get('state') or 'not loaded'}: {m.get('reason', '')})")
        for m in index
        if m.get("state") != "READY"
    ]
    configs = {}
    for name in ready:
        status, cfg = _http(f"http://{http_url}/v2/models/{name}/config", timeout_s=timeout_s, headers=headers)
        if status == 200 and isinstance(cfg, dict):
            configs[name] = cfg
    with ThreadPoolExecutor(max(1, len(configs))) as pool:
        futures = [pool.submit(check_model, http_url, n, cfg, timeout_s, headers) for n, cfg in configs.items()]
        report.checks += [ch for f in futures if (ch := f.result()) is not None]
    if not report.checks:
        report.error = "no model takes TEXT and returns LOGITS or OUTPUT_TEXT"
    return report


def reload_in_place(http_url: str, models: list[str], headers: dict[str, str] | None = None) -> str | None:
    """Load each model again with its own config plus a fresh ``elang_reload`` parameter; None when
    every load succeeded, else why not.

    Triton loads new instances (new stubs) next to the old ones and then switches, so the model
    never disappears (an unload then load would refuse its requests meanwhile). Needs model
    control explicit and, where the model-repository API is restricted, its secret in ``headers``.
    """
    base = f"http://{http_url.removeprefix('http://')}/v2"
    try:
        for m in models:
            status, config = _http(f"{base}/models/{m}/config", timeout_s=10, headers=headers)
            if status != 200 or not isinstance(config, dict):
                return f"config of {m} ({status}): {config}"
            config.setdefault("parameters", {})["elang_reload"] = {"string_value": f"{time.time():.6f}"}
            body = {"parameters": {"config": json.dumps(config)}}
            status, out = _http(f"{base}/repository/models/{m}/load", body, timeout_s=120, headers=headers)
            if status != 200:
                return f"load of {m} ({status}): {out}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return str(exc)
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="127.0.0.1:8000", help="the server's HTTP HOST:PORT (default 127.0.0.1:8000)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds each model may take to answer (default 10)")
    p.add_argument(
        "--slow-is-alive",
        action="store_true",
        help="a model that answers too slowly still counts as alive (only errors fail the check)",
    )
    p.add_argument("--quiet", action="store_true", help="print only when unhealthy")
    p.add_argument(
        "--reload-failing",
        action="store_true",
        help="when a model fails the check and the server is alive, reload it in place (model control explicit; "
        f"the control secret from {ADMIN_KEY_ENV} or {ADMIN_KEY_FILE_ENV}) and check again: exit 1 only when that "
        "did not heal it. The Helm chart's liveness probe: a dead stage is healed without restarting the pod",
    )


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when healthy, 1 when not (the Kubernetes exec probe contract)."""
    report = deep_check(args.url, args.timeout, args.slow_is_alive)
    if getattr(args, "reload_failing", False) and not report.healthy and report.live and report.failing():
        failing = report.failing()
        why = reload_in_place(args.url, failing, admin_headers(args.url, None, "http"))
        print(f"reloaded {', '.join(failing)} in place" if why is None else f"reload failed: {why}", file=sys.stderr)
        report = deep_check(args.url, args.timeout, args.slow_is_alive)
    if not (args.quiet and report.healthy):
        print(report.summary(), file=sys.stdout if report.healthy else sys.stderr)
    return 0 if report.healthy else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m elang.ops.health",
        description="Deep health check: one text through every stage of a running elang-serve server "
        "(exit 0 healthy, 1 not). The Kubernetes liveness probe.",
    )
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
