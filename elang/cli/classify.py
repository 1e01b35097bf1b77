"""The client command: classify texts through a running server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from elang.client.client import INTERRUPTED, ElangClient
from elang.client.inputs import add_input_options, guess_format, read_texts, threshold_arg


def _add_classify(sub: argparse._SubParsersAction) -> None:

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
    p.add_argument(
        "--batch-size", type=int, default=32, help="texts per request (default 32; the router routes each row)"
    )
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--output", type=Path, default=None, help="write predictions as JSONL here")
    p.add_argument("--json", action="store_true", help="print the stats as JSON instead of a table")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:

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
        first_line = source_first_line(args.source, args.format)
        for p, text in zip(result.predictions, texts):
            if p.ok:
                name = p.label_name or str(p.label)
                cut = "\ttruncated" if p.truncated else ""
                print(f"{name}\troute={p.route}\tenergy={p.energy:.4f}{cut}\t{text[:80]}")
            elif p.error_kind != INTERRUPTED:  # the texts never sent are counted below, not listed
                print(f"ERROR\tline {first_line + p.index}\t{p.error}\t{text[:80]}")
    print(json.dumps(result.stats.to_dict(), indent=2) if args.json else "\n" + result.stats.format_table())
    if result.stats.truncated:
        print(
            f"{result.stats.truncated} of {result.stats.answered} texts were cut at the answering model's max "
            "length and answered on their first tokens only (marked 'truncated'; a longer --max-length at "
            "training and export keeps more)",
            file=sys.stderr,
        )
    if result.interrupted:
        answered = len(texts) - len(result.failed)
        print(
            f"interrupted: {answered} of {len(texts)} texts answered, {result.interrupted} not sent",
            file=sys.stderr,
        )
        # Exit now: a request still in flight (its answer not awaited) holds a worker thread that
        # the interpreter would otherwise join at exit, for up to --timeout.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    if result.failed:
        where = f"their errors are in {args.output} (error field)" if args.output else "see the ERROR lines"
        print(f"{len(result.failed)} of {len(texts)} texts failed; {where}", file=sys.stderr)
        return 1
    return 0


def source_first_line(source: str, fmt: str | None) -> int:
    """The input file's line number of the first text: 2 below a CSV/TSV header, else 1 (a CSV
    field that spans lines shifts the texts after it)."""
    fmt = fmt or ("lines" if source == "-" else guess_format(source))
    return 2 if fmt in ("csv", "tsv") else 1
