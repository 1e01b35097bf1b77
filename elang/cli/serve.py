"""Commands that run or change a server: serve, health, tune."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from elang.client.admin import RESTRICTABLE, RESTRICTED_APIS, new_key, remove_key_files, write_key_files
from elang.ops.frontdoor import DEFAULT_MAX_BODY_BYTES, FrontDoor, FrontDoorError
from elang.ops.health import add_arguments, run
from elang.ops.server import TritonServer, free_port
from elang.ops.supervisor import Supervisor
from elang.repository.writer import ServingKnobs, tune_repository


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="start the bundled Triton server on a model repository, and keep it healthy",
        description="Starts tritonserver and runs the deep health check (one text through every stage, "
        "as `elang health`) every --health-interval seconds; after --health-failures failed checks in a "
        "row it heals (--heal). See docs/OPERATIONS.md.",
    )
    p.add_argument("--model-repository", required=True, type=Path, help="folder written by the repository writer")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for readiness")
    p.add_argument("--log-file", type=Path, default=None, help="server log (default: a temporary file)")
    p.add_argument("--log-verbose", type=int, default=0)
    p.add_argument(
        "--model-control",
        choices=("explicit", "none"),
        default="explicit",
        help="explicit (default): a dead stage is healed by reloading it alone, while the rest serves, and "
        "`elang calibrate --reload-url` applies a calibration without a restart; none: the repository is fixed "
        "and healing restarts the whole server",
    )
    p.add_argument("--allow-reload", action="store_true", help=argparse.SUPPRESS)  # the default since wave 3
    p.add_argument(
        "--restrict",
        default=",".join(RESTRICTED_APIS),
        help="Triton APIs only callers with the control secret may use, comma-separated (default "
        f"{','.join(RESTRICTED_APIS)}; also: {', '.join(a for a in RESTRICTABLE if a not in RESTRICTED_APIS)}); "
        "'none' leaves every API open to every client. The secret is new at every start and written, mode "
        "0600, where elang's tools find it (docs/OPERATIONS.md)",
    )
    f = p.add_argument_group("front door")
    f.add_argument(
        "--front-door",
        choices=("auto", "nginx", "off"),
        default="auto",
        help="NGINX on --host:--http-port in front of Triton's HTTP endpoint (then on 127.0.0.1), refusing "
        "bodies over --max-body with a 413 (Triton 2.51 crashes on JSON bodies of about 4.19 MB); auto "
        "(default): when nginx is installed; off: Triton serves HTTP itself",
    )
    f.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"bytes an HTTP request body may have at the front door (default {DEFAULT_MAX_BODY_BYTES})",
    )
    h = p.add_argument_group("healing")
    h.add_argument(
        "--heal",
        choices=("auto", "reload", "restart", "exit", "off"),
        default="auto",
        help="what to do when the server is unhealthy: reload the failing models in place (model control "
        "explicit), restart the server, exit with code 3, or nothing; auto (default): reload, falling back to a "
        "restart when the reload does not heal it (a restart alone with --model-control none)",
    )
    h.add_argument("--health-interval", type=float, default=5.0, help="seconds between deep checks (default 5)")
    h.add_argument("--health-failures", type=int, default=2, help="failed checks in a row before healing (default 2)")
    h.add_argument("--health-timeout", type=float, default=10.0, help="seconds a model may take to answer a check")
    h.add_argument(
        "--slow-after",
        type=float,
        default=60.0,
        help="heal a model that keeps answering checks too slowly after this many seconds (default 60; errors "
        "heal after --health-failures checks)",
    )
    h.add_argument(
        "--exit-timeout", type=int, default=10, help="seconds tritonserver waits for in-flight requests on shutdown"
    )
    p.set_defaults(func=cmd_serve)


def _restricted(raw: str) -> tuple[str, ...]:
    apis = tuple(a.strip() for a in raw.split(",") if a.strip())
    if apis in ((), ("none",)):
        return ()
    unknown = [a for a in apis if a not in RESTRICTABLE]
    if unknown:
        raise SystemExit(
            f"elang serve: --restrict {raw!r}: unknown {unknown}; Triton restricts {', '.join(RESTRICTABLE)}"
        )
    return apis


def cmd_serve(args: argparse.Namespace) -> int:
    restricted = _restricted(args.restrict)
    key = new_key() if restricted else None
    if args.model_control == "explicit" and "model-repository" not in restricted:
        print(
            "elang serve: WARNING: model control is explicit and the model-repository API is open: any client can "
            "load, unload or replace models (and run a model.py it uploads)",
            file=sys.stderr,
        )
    door_wanted = args.front_door == "nginx" or (args.front_door == "auto" and FrontDoor.available())
    if args.front_door == "auto" and not door_wanted:
        print(
            "elang serve: WARNING: no nginx, so no front door: an HTTP JSON body over about 4 MB crashes "
            "Triton 2.51 (install nginx-light; docs/OPERATIONS.md, Request size)",
            file=sys.stderr,
        )
    server = TritonServer(
        args.model_repository,
        host=args.host,
        http_port=free_port("127.0.0.1") if door_wanted else args.http_port,
        http_host="127.0.0.1" if door_wanted else None,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        startup_timeout_s=args.startup_timeout,
        log_path=args.log_file,
        log_verbose=args.log_verbose,
        model_control=args.model_control,
        exit_timeout_s=args.exit_timeout,
        admin_key=key,
        restricted_apis=restricted,
    )
    supervisor = Supervisor(
        server,
        heal=args.heal,
        interval_s=args.health_interval,
        failures=args.health_failures,
        timeout_s=args.health_timeout,
        notify=lambda msg: print(msg, file=sys.stderr, flush=True),
        slow_after_s=args.slow_after,
    )
    stop = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    door = None
    if door_wanted:
        try:
            door = FrontDoor(args.host, args.http_port, server.http_url, args.max_body).start()
        except FrontDoorError as exc:
            server.stop()
            print(f"elang serve: {exc}", file=sys.stderr)
            return 2
    public_http = f"{args.host}:{args.http_port}" if door else server.http_url
    key_files = write_key_files(key, [args.http_port, server.grpc_port]) if key else []
    print(f"Triton ready (pid {server.process.pid}), models from {args.model_repository}")
    print(f"  gRPC     {server.grpc_url}")
    print(
        f"  HTTP     http://{public_http}"
        + (f" (front door: nginx, bodies up to {args.max_body} bytes; Triton on {server.http_url})" if door else "")
    )
    print(f"  metrics  {server.metrics_url}")
    print(f"  log      {server.log_path}")
    print(f"  health   deep check every {args.health_interval:g} s, heal: {supervisor.heal}")
    if key_files:
        print(f"  control  {', '.join(restricted)} need the secret in {key_files[0].parent} (mode 0600)")
    else:
        print("  control  no API restricted (--restrict none)")
    print("Ctrl-C or SIGTERM stops it.", flush=True)
    supervisor.start()
    try:
        while not stop["now"] and not supervisor.stopped:
            if supervisor.heal == "off" and server.process.poll() is not None:
                print(
                    f"tritonserver exited with code {server.process.returncode}:\n{server.log_tail()}", file=sys.stderr
                )
                return 1
            time.sleep(0.2)
    finally:
        supervisor.stop()
        if door is not None:
            door.stop()
        code = server.stop()
        remove_key_files(key_files, key or "")
        print(f"stopped (exit code {code})")
        for event in supervisor.events:
            print(f"  health event at {event.detected_s:.0f} s: {event.describe()}")
    return supervisor.exit_code or 0


def _add_health(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "health",
        help="deep health check of a running server: one text through every stage (exit 0 healthy, 1 not)",
        description="The check behind the Helm chart's liveness probe and `elang serve`'s healing "
        "(also runnable as `python -m elang.ops.health`).",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_health)


def cmd_health(args: argparse.Namespace) -> int:

    return run(args)


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="change serving knobs of a repository in place (threads, inline stage, queues, deadlines)",
        description="Rewrites the configs of REPOSITORY atomically; restart the server (or reload the models) "
        "afterwards.",
    )
    p.add_argument("repository", type=Path)
    p.add_argument("--ort-spinning", type=_on_off, default=None, metavar="on|off", help="ONNX Runtime thread spinning")
    p.add_argument(
        "--inline",
        type=_on_off,
        default=None,
        metavar="on|off",
        help="routers run in their own process what they can: a pair's first stage, every segment of a multi-exit model",
    )
    p.add_argument(
        "--remote-stages",
        default=None,
        metavar="STAGE=grpc://HOST:PORT[/MODEL],...",
        help="routers call these stages on other Triton servers (grpcs:// for TLS; '' removes them); "
        "the environment variable ELANG_REMOTE_STAGES overrides it where the router runs",
    )
    p.add_argument("--router-instances", type=int, default=None, help="instances of each router")
    p.add_argument(
        "--streams",
        default=None,
        metavar="N|STAGE=N,...",
        help="OpenVINO CPU streams of the engine-openvino stages (all, or those named): > 1 runs each batch's "
        "rows as that many parts at once (docs/BENCHMARKS.md 10.5); routers' inline copies follow",
    )
    p.add_argument(
        "--threads",
        default=None,
        metavar="N|STAGE=N,...",
        help="intra-op threads of the python-ort stages (all, or those named; 0: every core); OpenVINO stages "
        "given a count are not pinned to cores; routers' inline copies follow",
    )
    p.add_argument(
        "--instances", default=None, metavar="N|STAGE=N,...", help="model instances of the stages (all, or those named)"
    )
    p.add_argument("--max-queue-delay-us", type=int, default=None, help="dynamic batching delay of every model")
    p.add_argument(
        "--metrics-interval-s", type=float, default=None, help="routers gather metric updates this long (default 0.5)"
    )
    q = p.add_argument_group("queues and deadlines (docs/OPERATIONS.md)")
    q.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help="requests allowed to wait per model; more are refused (0: no limit; with a 0 timeout: no queue policy)",
    )
    q.add_argument(
        "--queue-timeout-s", type=float, default=None, help="a request waiting longer in a queue is refused (0: never)"
    )
    q.add_argument(
        "--queue-scope",
        choices=("all", "routers", "stages"),
        default="all",
        help="models the two options above change (default all). No model has a queue policy by default: "
        "in Triton 2.51 one costs stalls of up to 500 ms (docs/OPERATIONS.md)",
    )
    q.add_argument("--stage-timeout-s", type=float, default=None, help="routers' deadline for each stage (default 60)")
    q.add_argument("--stage-inflight", type=int, default=None, help="routers' calls in flight per stage (default 2)")
    q.add_argument(
        "--stage-queue-rows", type=int, default=None, help="texts allowed to wait in a router per stage (default 256)"
    )
    q.add_argument(
        "--fault-injection",
        type=_on_off,
        default=None,
        metavar="on|off",
        help="stages honour the request parameter elang_fault_sleep_s (fault tests and bench --faults only)",
    )
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:

    knobs = ServingKnobs(
        ort_spinning=args.ort_spinning,
        inline=args.inline,
        remote_stages=args.remote_stages,
        router_instances=args.router_instances,
        queue_delay_us=args.max_queue_delay_us,
        metrics_interval_s=args.metrics_interval_s,
        max_queue_size=args.max_queue_size,
        queue_timeout_s=args.queue_timeout_s,
        queue_scope=args.queue_scope,
        stage_timeout_s=args.stage_timeout_s,
        stage_inflight=args.stage_inflight,
        stage_queue_rows=args.stage_queue_rows,
        fault_injection=args.fault_injection,
        streams=args.streams,
        threads=args.threads,
        instances=args.instances,
    )
    if not knobs.given():
        print("nothing to change: give at least one knob (elang tune --help lists them)", file=sys.stderr)
        return 2
    changed = tune_repository(args.repository, knobs)
    print(f"changed: {', '.join(changed)}" if changed else "no config changed (already so)")
    return 0
