"""``elang generate``: generate through a running server's seq2seq router, one line per input."""

from __future__ import annotations

import argparse
import json
import sys

from elang.client.client import ElangClient
from elang.client.inputs import add_input_options, read_texts, threshold_arg


def add_parser(sub: argparse._SubParsersAction) -> None:

    p = sub.add_parser(
        "generate",
        help="generate through a running server's seq2seq router (or a generating stage), one line per input",
        description="Prints one line per input, in input order: OUTPUT<TAB>route=R<TAB>energy=E<TAB>INPUT, or with "
        "--json one object per line (input, output, route, energy, token_energies, error). Routing stats go to "
        "stderr.",
    )
    p.add_argument(
        "source", help="file of inputs (one per line, or CSV/TSV/JSONL with an input column), or - for stdin"
    )
    p.add_argument("--url", default="127.0.0.1:8001", help="server HOST:PORT (gRPC port for grpc, HTTP for http)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--model", default="elang", help="elang (routed), swift or super")
    p.add_argument("--format", choices=("lines", "csv", "tsv", "jsonl"), default=None, help="default: by extension")
    p.add_argument("--input-column", default="input", help="input column of a CSV/TSV/JSONL file")
    p.add_argument(
        "--threshold", default=None, type=threshold_arg, help="override the router threshold (write --threshold=-inf)"
    )
    add_input_options(p)
    p.add_argument("--max-new-tokens", type=int, default=None, help="at most this many new tokens per input")
    p.add_argument(
        "--batch-size", type=int, default=32, help="inputs per request (default 32; the router routes each row)"
    )
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    texts, _ = read_texts(args.source, args.format, args.input_column, None, args.encoding, args.errors)
    client = ElangClient(args.url, protocol=args.protocol, model=args.model, timeout_s=args.timeout)
    result = client.generate(
        texts,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        threshold=args.threshold,
        max_new_tokens=args.max_new_tokens,
        progress=sys.stderr.isatty(),
    )
    for p, text in zip(result.predictions, texts):
        if args.json:
            row = {
                "input": text,
                "output": p.output,
                "route": p.route,
                "energy": p.energy,
                "token_energies": None if p.token_energies is None else [float(x) for x in p.token_energies],
                "error": p.error,
            }
            print(json.dumps(row, ensure_ascii=False))
        elif p.ok:
            print(f"{p.output}\troute={p.route}\tenergy={p.energy:.4f}\t{text}")
        else:
            print(f"ERROR\t{p.error}\t{text}")
    print("\n" + result.stats.format_table(), file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} of {len(texts)} inputs failed; see the ERROR lines", file=sys.stderr)
        return 1
    return 0
