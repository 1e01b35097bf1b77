"""Reading texts (and optional labels) for the client: plain lines, CSV/TSV or JSONL."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

FORMATS = ("lines", "csv", "tsv", "jsonl")


class InputFileError(ValueError):
    """The input file cannot be read as asked; the message names the file and the problem."""


def guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def decode(raw: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """``raw`` as text; bytes that are not ``encoding`` are an error naming the line, unless
    ``errors="replace"`` is asked for."""
    try:
        return raw.decode(encoding, errors=errors)
    except LookupError:
        raise InputFileError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputFileError(
            f"{name} line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not valid {encoding}; "
            f"give the file's encoding (--encoding latin-1) or replace such bytes (--errors replace)"
        ) from None


def read_rows(
    raw: bytes, name: str, fmt: str, encoding: str = "utf-8", errors: str = "strict"
) -> tuple[list[dict], list[str]]:
    """Rows (dicts) and column names of a CSV, TSV or JSONL file's bytes: the one reader of
    tabular files (the client's inputs and the training data)."""
    content = decode(raw, name, encoding, errors)
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFileError(f"{name} line {n}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputFileError(f"{name} line {n}: expected a JSON object")
            rows.append(obj)
        return rows, sorted({k for r in rows for k in r})
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter="\t" if fmt == "tsv" else ",")
        rows = list(reader)
        return rows, list(reader.fieldnames or [])
    raise InputFileError(f"unknown data format {fmt!r}; choose csv, tsv or jsonl")


def read_texts(
    source: str,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
) -> tuple[list[str], list[str] | None]:
    """Texts and, when ``label_column`` is given, their labels from a file or ``-`` (stdin).

    Every line of a plain-text file is one text, blank ones included (the client reports them
    as empty texts, like empty CSV cells), so that outputs line up with inputs."""
    fmt = fmt or ("lines" if source == "-" else guess_format(source))
    if fmt not in FORMATS:
        raise InputFileError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if source == "-":
        raw, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            raw, name = Path(source).read_bytes(), source
        except OSError as exc:
            raise InputFileError(f"cannot read {source}: {exc.strerror}") from None
    if fmt == "lines":
        if label_column:
            raise InputFileError(f"{name}: labels need a CSV, TSV or JSONL file with a {label_column!r} column")
        texts, labels = decode(raw, name, encoding, errors).splitlines(), None
    else:
        rows, columns = read_rows(raw, name, fmt, encoding, errors)
        for col in (text_column, label_column):
            if col and col not in columns:
                what = "field" if fmt == "jsonl" else "column"
                raise InputFileError(f"{name}: no {what} {col!r}; {what}s are {columns}")
        texts = ["" if r.get(text_column) is None else str(r.get(text_column)) for r in rows]
        labels = [str(r.get(label_column, "")) for r in rows] if label_column else None
    if not any(t.strip() for t in texts):
        raise InputFileError(f"{name} holds no texts" + (" (only blank lines)" if texts else ""))
    return texts, labels


def threshold_arg(value: str) -> str:
    """argparse type of ``--threshold``: a number, ``inf``/``-inf``, or numbers separated by
    commas (one per routing step); checked before anything is sent."""

    parts = [p.strip() for p in str(value).split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number, inf, -inf, or numbers separated by commas"
        ) from None
    if any(math.isnan(x) for x in numbers):
        raise argparse.ArgumentTypeError(f"{value!r}: NaN is not a threshold")
    return value


def add_input_options(parser) -> None:  # noqa: ANN001 - an argparse parser
    """--encoding and --errors of the commands that read input files."""
    parser.add_argument("--encoding", default="utf-8", help="the input file's encoding (default utf-8)")
    parser.add_argument(
        "--errors",
        choices=("strict", "replace"),
        default="strict",
        help="bytes not in --encoding: strict refuses the file naming the line (default), replace substitutes U+FFFD",
    )
