"""The `elang` command: serve, classify, build a tiny repository, run the demo."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from elang import __version__, calibrate_cmd, dataspec, exits_cmd, generate_cmd, pairs, seq2seq_cmd, slenderize_cmd
from elang.quiet import quiet_third_party

log = logging.getLogger("elang")


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
        "--allow-reload",
        action="store_true",
        help="model control 'explicit': `elang calibrate --reload-url` can reload the router without a restart, "
        "and a dead stage is healed by reloading it alone",
    )
    h = p.add_argument_group("healing")
    h.add_argument(
        "--heal",
        choices=("auto", "reload", "restart", "exit", "off"),
        default="auto",
        help="what to do when the server is unhealthy: reload the failing models (needs --allow-reload), restart "
        "the server, exit with code 3, or nothing; auto: reload with --allow-reload, else restart",
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


def cmd_serve(args: argparse.Namespace) -> int:
    from elang.server import TritonServer
    from elang.supervisor import Supervisor

    server = TritonServer(
        args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        startup_timeout_s=args.startup_timeout,
        log_path=args.log_file,
        log_verbose=args.log_verbose,
        model_control="explicit" if args.allow_reload else "none",
        exit_timeout_s=args.exit_timeout,
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
    print(f"Triton ready (pid {server.process.pid}), models from {args.model_repository}")
    print(f"  gRPC     {server.grpc_url}")
    print(f"  HTTP     http://{server.http_url}")
    print(f"  metrics  {server.metrics_url}")
    print(f"  log      {server.log_path}")
    print(f"  health   deep check every {args.health_interval:g} s, heal: {supervisor.heal}")
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
        code = server.stop()
        print(f"stopped (exit code {code})")
        for event in supervisor.events:
            print(f"  health event at {event.detected_s:.0f} s: {event.describe()}")
    return supervisor.exit_code or 0


def _add_health(sub: argparse._SubParsersAction) -> None:
    from elang.health import add_arguments

    p = sub.add_parser(
        "health",
        help="deep health check of a running server: one text through every stage (exit 0 healthy, 1 not)",
        description="The check behind the Helm chart's liveness probe and `elang serve`'s healing "
        "(also runnable as `python -m elang.health`).",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_health)


def cmd_health(args: argparse.Namespace) -> int:
    from elang.health import run

    return run(args)


def _add_classify(sub: argparse._SubParsersAction) -> None:
    from elang.client.inputs import add_input_options, threshold_arg

    p = sub.add_parser("classify", help="classify texts through a running server and print routing stats")
    p.add_argument("source", help="file of texts (one per line, or CSV/TSV/JSONL with a text column), or - for stdin")
    p.add_argument("--url", default="127.0.0.1:8001", help="server HOST:PORT (gRPC port for grpc, HTTP for http)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument(
        "--model", default="elang", help="elang (routed), swift, super, or another router (e.g. elang_exits)"
    )
    p.add_argument("--format", choices=("lines", "csv", "tsv", "jsonl"), default=None, help="default: by extension")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default=None, help="column of true labels: adds accuracy to the stats")
    p.add_argument(
        "--threshold",
        default=None,
        type=threshold_arg,
        help="override the router threshold for these requests (write --threshold=-inf for minus infinity)",
    )
    add_input_options(p)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--output", type=Path, default=None, help="write predictions as JSONL here")
    p.add_argument("--json", action="store_true", help="print the stats as JSON instead of a table")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:
    from elang.client.client import ElangClient
    from elang.client.inputs import read_texts

    texts, labels = read_texts(
        args.source, args.format, args.text_column, args.label_column, args.encoding, args.errors
    )
    client = ElangClient(args.url, protocol=args.protocol, model=args.model, timeout_s=args.timeout)
    result = client.classify(
        texts,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        threshold=args.threshold,
        true_labels=labels,
        progress=sys.stderr.isatty(),
    )
    if args.output:
        with open(args.output, "w") as f:
            for p in result.predictions:
                f.write(json.dumps(p.to_dict()) + "\n")
    else:
        for p, text in zip(result.predictions, texts):
            if p.ok:
                name = p.label_name or str(p.label)
                print(f"{name}\troute={p.route}\tenergy={p.energy:.4f}\t{text[:80]}")
            else:
                print(f"ERROR\t{p.error}\t{text[:80]}")
    print(json.dumps(result.stats.to_dict(), indent=2) if args.json else "\n" + result.stats.format_table())
    if result.failed:
        print(f"{len(result.failed)} of {len(texts)} texts failed; see the ERROR lines", file=sys.stderr)
        return 1
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier (cached, resumable) and report its accuracy")
    p.add_argument("--preset", choices=("swift", "super"), default=None, help="the default pair's recipes")
    p.add_argument(
        "--model",
        default=None,
        help="minilm-l6, mpnet-base (SHA-256 checked), a local Hugging Face checkpoint folder, or a Hub id with a pinned revision: org/name@revision",
    )
    p.add_argument("--layers", type=int, default=None, help="keep only the first N encoder layers")
    p.add_argument("--freeze-layers", type=int, default=None, help="freeze embeddings and the first N layers")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text (default: the 95th percentile of the training texts, rounded up to 32, at most 256)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--patience", type=int, default=None, help="evaluations without improvement before early stopping (default 1)"
    )
    p.add_argument("--evals-per-epoch", type=int, default=None, help="validation runs per epoch (default 1)")
    p.add_argument("--min-steps", type=int, default=None, help="no early stopping before this many steps (default 200)")
    p.add_argument(
        "--class-weights",
        action="store_const",
        const=True,
        default=None,
        help="weight the loss by inverse label frequency (imbalanced labels)",
    )
    d = p.add_argument_group("distillation")
    d.add_argument(
        "--distill-from",
        default=None,
        metavar="CHECKPOINT",
        help="a teacher checkpoint (e.g. the trained Super): learn its soft labels on the training texts and on "
        "the texts no split uses",
    )
    d.add_argument("--distill-unlabelled", type=int, default=None, help="unlabelled texts to use (default: all)")
    d.add_argument("--distill-alpha", type=float, default=None, help="weight of the true-label loss (default 0.5)")
    m = p.add_argument_group("multi-exit (Right Tool / DeeBERT / PABEE)")
    m.add_argument(
        "--exits",
        default=None,
        metavar="LAYERS",
        help="a classifier exit after each of these layers, e.g. 2,4,6,8,10,12; all trained jointly "
        "(loss weighted by depth), with a per-exit temperature fitted on the calibration split",
    )
    m.add_argument(
        "--exit-distill",
        type=float,
        default=None,
        help="weight of distilling the top exit into the lower ones (default 0.5; 0 = off)",
    )
    m.add_argument(
        "--exit-head-lr",
        type=float,
        default=None,
        help="learning rate of the exit heads (default 5e-4, or --lr if higher)",
    )
    m.add_argument(
        "--exit-weighting",
        choices=("equal", "depth"),
        default=None,
        help="exit losses averaged (equal, Right Tool; default) or weighted by depth (PABEE)",
    )
    p.add_argument("--quick", action="store_true", help="a first look: 1000/500/1000 rows, one epoch")
    p.add_argument("--cache-dir", type=Path, default=None, help="default: $ELANG_CACHE or ~/.cache/elang")
    dataspec.add_arguments(p)
    p.set_defaults(func=cmd_train)


def recipe_from_args(args: argparse.Namespace):  # noqa: ANN201
    from dataclasses import replace

    from elang.export.train import PRESETS, Recipe

    if args.preset is None and args.model is None:
        raise ValueError("give --preset swift|super or --model NAME_OR_FOLDER")
    recipe = PRESETS[args.preset] if args.preset else Recipe(base=args.model)
    if args.preset and args.model:
        recipe = replace(recipe, base=args.model)
    for field in (
        "layers",
        "freeze_layers",
        "epochs",
        "lr",
        "batch_size",
        "max_length",
        "seed",
        "patience",
        "evals_per_epoch",
        "min_steps",
        "class_weights",
        "distill_from",
        "distill_unlabelled",
        "distill_alpha",
        "exit_distill",
        "exit_head_lr",
        "exit_weighting",
    ):
        value = getattr(args, field)
        if value is not None:
            recipe = replace(recipe, **{field: value})
    if args.exits:
        from elang.export.multiexit import parse_exits

        recipe = replace(
            recipe, exits=parse_exits(args.exits), freeze_layers=0 if args.freeze_layers is None else args.freeze_layers
        )
    if args.quick:
        recipe = replace(recipe, epochs=1)
    if recipe.distill_from:
        recipe = replace(recipe, distill_from=str(Path(recipe.distill_from).resolve()))
    return recipe


def exit_table(m: dict) -> str:
    """Per-exit accuracy, temperature and FLOPs of a multi-exit training run's metrics."""
    lines = ["exit layer | validation | test | temperature | GFLOPs/text", "---|---|---|---|---"]
    for i, layer in enumerate(m["exit_layers"]):
        lines.append(
            f"{layer} | {m['exit_validation_accuracy'][i]:.2%} | {m['exit_test_accuracy'][i]:.2%} | "
            f"{m['exit_temperatures'][i]:.3f} | {m['exit_gflops'][i]:.2f}"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from elang.export.pipeline import default_cache
    from elang.export.train import train_classifier

    if args.quick and not args.sizes:
        args.sizes = "1000,500,1000"
    recipe = recipe_from_args(args)
    splits, spec = dataspec.splits_for(args)
    print(f"data: {splits.describe()}")
    result = train_classifier(recipe, splits, args.cache_dir or default_cache())
    dataspec.save(result.checkpoint, spec, splits)
    m = result.metrics
    print(f"checkpoint {result.checkpoint}")
    print(f"validation accuracy {m['validation_accuracy']:.2%}, test accuracy {m['test_accuracy']:.2%}")
    print(f"{m['steps']} steps in {m['train_seconds'] / 60:.1f} min, {m['parameters'] / 1e6:.1f}M parameters")
    if m.get("exit_layers"):
        print(exit_table(m))
    for what, note in (m.get("notes") or {}).items():
        print(f"{what.replace('_', ' ')}: {note}")
    if m.get("distilled_from"):
        print(
            f"distilled from {m['distilled_from']} on {m['unlabelled_texts']} unlabelled texts besides the training set"
        )
    if m.get("warning"):
        print(f"WARNING: {m['warning']}", file=sys.stderr)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (with parity check) into a model repository")
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a local Hugging Face checkpoint folder: a text classifier, or an encoder-decoder (T5 and kin), "
        "which becomes a generating stage (docs/SEQ2SEQ.md)",
    )
    p.add_argument("--as", dest="role", required=True, choices=("swift", "super"))
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument(
        "--runtime",
        choices=("python-ort", "onnxruntime", "tensorrt", "python-ensemble"),
        default="python-ort",
        help="python-ort runs here; onnxruntime/tensorrt write configs for the NGC container",
    )
    p.add_argument("--quantize", choices=("int8",), default=None, help="dynamic int8 quantization")
    p.add_argument("--quantize-exclude", choices=("ffn-output", "none"), default="ffn-output")
    p.add_argument("--optimize", choices=("none", "basic", "extended", "all"), default="none")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text, longer texts are truncated (default: what the checkpoint was trained with, else 128)",
    )
    p.add_argument("--gpu", action="store_true", help="GPU instances / CUDA provider in the configs")
    p.add_argument("--atol", type=float, default=1e-4, help="max |ONNX - PyTorch| logit difference accepted")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="encoder-decoders: the cap on generated tokens per row (default: the training's, else 40)",
    )
    p.add_argument(
        "--name", default=None, help="model name for a variant super (e.g. super_int8); adds router elang_NAME"
    )
    s = p.add_argument_group("serving (config.pbtxt of the stage)")
    s.add_argument("--instances", type=int, default=1, help="model instances")
    s.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per instance (0: all cores)")
    s.add_argument("--max-batch-size", type=int, default=64)
    s.add_argument("--max-queue-delay-us", type=int, default=500, help="dynamic batching delay")
    s.add_argument("--length-bucket", type=int, default=0, help="rows per length-sorted sub-batch (0: off)")
    s.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let idle ONNX Runtime threads busy-wait (off: stages sharing cores slow each other down)",
    )
    s.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help="requests allowed to wait for the stage; more are refused at once (default 4 x max batch; 0: no limit)",
    )
    s.add_argument("--queue-timeout-s", type=float, default=60.0, help="a request waiting longer is refused (0: never)")
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from elang.export.seq2seq_export import is_encoder_decoder
    from elang.export.stage import export_stage
    from elang.export.tiny import sample_rows

    if is_encoder_decoder(args.checkpoint):
        return seq2seq_cmd.export(args)

    args.repository.mkdir(parents=True, exist_ok=True)
    dataspec.adopt(args.checkpoint, args.repository, args.allow_other_data)
    if args.max_length is None:
        from elang.export.train import trained_max_length

        args.max_length = trained_max_length(args.checkpoint) or 128
    splits, _ = dataspec.splits_for(args, args.repository, required=args.quantize is not None)
    report = export_stage(
        args.checkpoint,
        args.role,
        args.repository,
        splits=splits,
        sample_texts=[t for t, _ in sample_rows()],
        runtime=args.runtime,
        quantize=args.quantize,
        quantize_exclude=args.quantize_exclude,
        optimize=args.optimize,
        max_length=args.max_length,
        gpu=args.gpu,
        atol=args.atol,
        name=args.name,
        serving={
            "instances": args.instances,
            "intra_op_threads": args.threads,
            "max_batch_size": args.max_batch_size,
            "max_queue_delay_us": args.max_queue_delay_us,
            "length_bucket": args.length_bucket,
            "ort_spinning": args.ort_spinning,
            "max_queue_size": args.max_queue_size,
            "queue_timeout_s": args.queue_timeout_s,
        },
    )
    print("\n".join(report.lines()))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="Swift-only vs Super-only vs E-LANG through the real server, or a soak test")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--repository", type=Path, help="start a server on this repository (RSS is reported)")
    where.add_argument("--url", help="a running server's gRPC HOST:PORT")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated in-flight request counts")
    p.add_argument("--limit", type=int, default=1000, help="test texts to send per configuration (0: all)")
    p.add_argument("--chunks", type=int, default=4, help="interleaving: configurations alternate per chunk")
    p.add_argument("--batch-size", type=int, default=1, help="texts per request")
    p.add_argument("--sweep", default=None, help="extra router thresholds to measure, comma-separated")
    p.add_argument("--only", default=None, help="measure only these configurations (names as in the report)")
    p.add_argument("--soak", type=float, default=None, metavar="SECONDS", help="instead: soak test of the router")
    p.add_argument("--soak-concurrency", type=int, default=64)
    f = p.add_argument_group("faults (needs --repository; docs/BENCHMARKS.md)")
    f.add_argument(
        "--faults",
        action="store_true",
        help="instead: load at --fault-concurrency while Super's stub is killed every --kill-every seconds and "
        "one Super call is slowed; reports sent/answered/failed/lost and Swift-only latency with and without",
    )
    f.add_argument("--fault-concurrency", type=int, default=32)
    f.add_argument("--fault-duration", type=float, default=300.0, help="seconds with faults (default 300)")
    f.add_argument("--fault-baseline", type=float, default=60.0, help="seconds without faults first (default 60)")
    f.add_argument("--kill-every", type=float, default=60.0, help="seconds between stub kills (default 60)")
    f.add_argument("--slow-s", type=float, default=20.0, help="how long the one slow Super call sleeps (default 20)")
    f.add_argument("--fault-stage-timeout", type=float, default=10.0, help="the routers' stage_timeout_s (default 10)")
    f.add_argument("--heal", choices=("reload", "restart"), default="reload", help="how the supervisor heals")
    p.add_argument("--report", type=Path, default=Path("bench-report"), help="folder for bench.md, .png, .json")
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from elang.bench import run_bench_command
    from elang.seq2seq_calibrate_cmd import seq2seq_splits, serves_seq2seq

    if serves_seq2seq(args.repository, args.url):
        test = seq2seq_splits(args).test.head(args.limit or None)
    else:
        splits, _ = dataspec.splits_for(args, args.repository)
        test = splits.test
        if args.limit:
            test = test.subset(range(min(args.limit, len(test))))
    return run_bench_command(args, test, " ".join(["elang", *sys.argv[1:]]))


def _add_tiny(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-repo", help="build a repository from tiny random BERT models (tests, first look)")
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, default=None, help="where checkpoints and ONNX go (default: next to it)")
    p.add_argument("--super-fraction", type=float, default=0.3, help="share of the sample texts sent to super")
    p.add_argument("--runtime", choices=("python-ort", "onnxruntime", "python-ensemble"), default="python-ort")
    p.set_defaults(func=cmd_tiny)


def cmd_tiny(args: argparse.Namespace) -> int:
    from elang.export.pipeline import build_tiny_repository

    info = build_tiny_repository(args.repository, args.work_dir, args.super_fraction, args.runtime)
    print(json.dumps(info, indent=2))
    return 0


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
        "--inline", type=_on_off, default=None, metavar="on|off", help="routers run their first stage in-process"
    )
    p.add_argument("--router-instances", type=int, default=None, help="instances of each router")
    p.add_argument("--max-queue-delay-us", type=int, default=None, help="dynamic batching delay of every model")
    p.add_argument(
        "--metrics-interval-s", type=float, default=None, help="routers gather metric updates this long (default 0.5)"
    )
    q = p.add_argument_group("queues and deadlines (docs/OPERATIONS.md)")
    q.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help="requests allowed to wait per model; more are refused (0: no limit)",
    )
    q.add_argument(
        "--queue-timeout-s", type=float, default=None, help="a request waiting longer in a queue is refused (0: never)"
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
    from elang.repository import ServingKnobs, tune_repository

    knobs = ServingKnobs(
        ort_spinning=args.ort_spinning,
        inline=args.inline,
        router_instances=args.router_instances,
        queue_delay_us=args.max_queue_delay_us,
        metrics_interval_s=args.metrics_interval_s,
        max_queue_size=args.max_queue_size,
        queue_timeout_s=args.queue_timeout_s,
        stage_timeout_s=args.stage_timeout_s,
        stage_inflight=args.stage_inflight,
        stage_queue_rows=args.stage_queue_rows,
        fault_injection=args.fault_injection,
    )
    if not knobs.given():
        print("nothing to change: give at least one knob (elang tune --help lists them)", file=sys.stderr)
        return 2
    changed = tune_repository(args.repository, knobs)
    print(f"changed: {', '.join(changed)}" if changed else "no config changed (already so)")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train (cached) and export the default pair, serve it, compare Swift, Super and E-LANG"
    )
    p.add_argument("--work-dir", type=Path, default=None, help="default: $ELANG_CACHE/demo")
    p.add_argument("--cache-dir", type=Path, default=None, help="training cache (default: $ELANG_CACHE)")
    p.add_argument("--quick", action="store_true", help="a first look: small splits, one epoch each")
    p.add_argument("--limit", type=int, default=None, help="send only the first N test texts")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--tiny", action="store_true", help="tiny random models and the embedded sample (seconds)")
    p.add_argument(
        "--task",
        choices=("classify", "g2p"),
        default="classify",
        help="g2p: the seq2seq pair (T5s on CMUdict grapheme-to-phoneme, docs/SEQ2SEQ.md)",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from elang.export.pipeline import run_demo, run_tiny_demo

    if args.task == "g2p":
        from elang.export.pipeline import default_cache
        from elang.export.seq2seq_pipeline import run_g2p_demo

        if args.tiny:
            raise ValueError("--tiny is the classifier demo; the g2p demo has --quick")
        cache = args.cache_dir or default_cache()
        work = args.work_dir or cache / "demo"
        return run_g2p_demo(cache, work, args.quick, args.limit, args.concurrency)
    if args.tiny:
        return run_tiny_demo(args.work_dir)
    return run_demo(
        work_dir=args.work_dir,
        cache_dir=args.cache_dir,
        quick=args.quick,
        limit=args.limit,
        concurrency=args.concurrency,
    )


def _add_bench_layout(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-layout", help="measure one-model (python-ort) vs tokenizer->ONNX ensemble stages on the real server"
    )
    p.add_argument("--model-dir", type=Path, default=None, help="ONNX model folder (default: the tiny Swift)")
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--max-length", type=int, default=128)
    p.set_defaults(func=cmd_bench_layout)


def cmd_bench_layout(args: argparse.Namespace) -> int:
    import tempfile

    from elang.bench import compare_stage_layouts, format_layout_table, machine_line
    from elang.export.tiny import sample_rows

    texts = [t for t, _ in sample_rows()]
    with tempfile.TemporaryDirectory(prefix="elang-bench-") as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            from elang.export.pipeline import build_tiny_repository

            build_tiny_repository(Path(tmp) / "repo", Path(tmp) / "work")
            model_dir = Path(tmp) / "work" / "swift"
        rows = compare_stage_layouts(model_dir, texts, rounds=args.rounds, max_length=args.max_length)
    print(f"model {args.model_dir or 'tiny swift'}, max_length {args.max_length}, {args.rounds} interleaved rounds")
    print(f"machine: {machine_line()}")
    print(format_layout_table(rows))
    return 0


def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile-stage", help="tokenization vs ONNX Runtime time of one stage, offline, by batch size")
    p.add_argument("model_dir", type=Path, help="a stage folder (e.g. REPO/swift/1) or an exported model folder")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--rounds", type=int, default=20)
    p.set_defaults(func=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    from elang.bench import machine_line, profile_stage
    from elang.export.tiny import sample_rows

    rows = profile_stage(args.model_dir, [t for t, _ in sample_rows()], rounds=args.rounds, max_length=args.max_length)
    print(f"{args.model_dir}: machine {machine_line()}")
    print("| batch | tokenize ms/text | ONNX Runtime ms/text | tokenizer share |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['tokenize_ms_per_text']:.3f} | {r['onnx_ms_per_text']:.2f} | {r['tokenize_share']:.1%} |"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elang", description="E-LANG energy-based routing on Triton")
    parser.add_argument("--version", action="version", version=f"elang-serve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_serve,
        _add_classify,
        generate_cmd.add_parser,
        _add_train,
        seq2seq_cmd.add_parser,
        slenderize_cmd.add_parser,
        _add_export,
        exits_cmd.add_parser,
        calibrate_cmd.add_parser,
        pairs.add_parser,
        _add_bench,
        _add_tiny,
        _add_tune,
        _add_health,
        _add_demo,
        _add_bench_layout,
        _add_profile,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    quiet_third_party(args.verbose)
    from elang.client.client import ClientError
    from elang.client.inputs import InputFileError
    from elang.export.onnx_export import ExportError
    from elang.repository import RepositoryError
    from elang.server import ServerError

    try:
        return int(args.func(args) or 0)
    except (
        ClientError,
        InputFileError,
        RepositoryError,
        ServerError,
        ExportError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"elang {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
