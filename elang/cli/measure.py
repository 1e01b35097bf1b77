"""Commands that measure: bench, bench-layout, profile-stage."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from elang.bench import compare_stage_layouts, format_layout_table, machine_line, profile_stage, run_bench_command
from elang.data import spec as dataspec
from elang.export.classify.tiny import sample_rows
from elang.export.pipeline import build_tiny_repository


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
    f.add_argument(
        "--heal",
        choices=("auto", "reload", "restart"),
        default="auto",
        help="how the supervisor heals (default auto, as elang serve: reload in place, restart as the fallback)",
    )
    p.add_argument("--report", type=Path, default=Path("bench-report"), help="folder for bench.md, .png, .json")
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=cmd_bench)


def served_data(url: str) -> dataspec.DataSpec:
    """The data a served router's models were trained on (its ``data_spec`` parameter), or a clear refusal."""
    from elang import contract as c
    from elang.client.client import ElangClient

    raw = ElangClient(url).router_info().get(c.PARAM_DATA_SPEC, "")
    if not raw:
        raise dataspec.DatasetError(
            f"the router at {url} does not say which data its models were trained on (it was written before "
            "routers recorded it, or from models without a data record); pass --data (and its columns) or "
            "bench the repository with --repository"
        )
    spec = dataspec.DataSpec.from_json(raw, Path(f"router at {url}"))
    print(f"data: the served router's record: {spec.describe()}", file=sys.stderr)
    return spec


def cmd_bench(args: argparse.Namespace) -> int:
    from elang.cli.calibrate_generate import seq2seq_splits, serves_seq2seq

    if serves_seq2seq(args.repository, args.url):
        test = seq2seq_splits(args).test.head(args.limit or None)
    else:
        if args.url and dataspec.spec_from_args(args) is None:
            splits = served_data(args.url).splits()
        else:
            splits, _ = dataspec.splits_for(args, args.repository)
        test = splits.test
        if args.limit:
            test = test.subset(range(min(args.limit, len(test))))
    return run_bench_command(args, test, " ".join(["elang", *sys.argv[1:]]))


def _add_bench_layout(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-layout", help="measure one-model (python-ort) vs tokenizer->ONNX ensemble stages on the real server"
    )
    p.add_argument("--model-dir", type=Path, default=None, help="ONNX model folder (default: the tiny Swift)")
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--max-length", type=int, default=128)
    p.set_defaults(func=cmd_bench_layout)


def cmd_bench_layout(args: argparse.Namespace) -> int:

    texts = [t for t, _ in sample_rows()]
    with tempfile.TemporaryDirectory(prefix="elang-bench-") as tmp:
        model_dir = args.model_dir
        if model_dir is None:
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

    rows = profile_stage(args.model_dir, [t for t, _ in sample_rows()], rounds=args.rounds, max_length=args.max_length)
    print(f"{args.model_dir}: machine {machine_line()}")
    print("| batch | tokenize ms/text | ONNX Runtime ms/text | tokenizer share |\n|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['tokenize_ms_per_text']:.3f} | {r['onnx_ms_per_text']:.2f} | {r['tokenize_share']:.1%} |"
        )
    return 0
