"""The `elang` command: one module per command family (serve, client, train, measure; the
calibrate, exits, train_seq2seq, slenderize, generate and pairs commands keep their own modules)."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import signal
import sys
import threading

from elang import __version__
from elang.calibration import pairs
from elang.cli import calibrate, capacity, classify, exits, generate, measure, serve, slenderize, train, train_seq2seq
from elang.cli.quiet import quiet_third_party
from elang.cli.train import recipe_from_args  # noqa: F401 - re-exported for callers of elang.cli
from elang.client.client import ClientError
from elang.client.inputs import InputFileError
from elang.export.classify.onnx import ExportError
from elang.ops.server import ServerError
from elang.repository.writer import RepositoryError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elang", description="E-LANG energy-based routing on Triton")
    parser.add_argument("--version", action="version", version=f"elang-serve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        serve._add_serve,
        classify._add_classify,
        generate.add_parser,
        train._add_train,
        train_seq2seq.add_parser,
        slenderize.add_parser,
        train._add_export,
        exits.add_parser,
        calibrate.add_parser,
        pairs.add_parser,
        measure._add_bench,
        train._add_tiny,
        serve._add_tune,
        serve._add_health,
        train._add_demo,
        measure._add_bench_layout,
        measure._add_profile,
        capacity.add_parser,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        # `kill -USR1 PID` prints every thread's stack to stderr: what a stuck command is doing.
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a stderr with no file (captured)
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    quiet_third_party(args.verbose)

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
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling: a line, not a traceback
        print(f"elang {args.command}: interrupted", file=sys.stderr)
        return 130
