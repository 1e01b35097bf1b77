"""Reading texts (and optional labels) for the client: plain lines, CSV/TSV or JSONL."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

FORMATS = ("lines", "csv", "tsv", "jsonl")


class InputFileError(ValueError):
    """The input file cannot be read as asked; the message names the file and the problem."""


def guess_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def read_texts(
    source: str,
    fmt: str | None = None,
    text_column: str = "text",
    label_column: str | None = None,
) -> tuple[list[str], list[str] | None]:
    """Texts and, when ``label_column`` is given, their labels from a file or ``-`` (stdin)."""
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
    content = raw.decode("utf-8", errors="replace")
    if fmt == "lines":
        if label_column:
            raise InputFileError(f"{name}: labels need a CSV, TSV or JSONL file with a {label_column!r} column")
        texts = [line for line in content.splitlines() if line.strip()]
        labels = None
    elif fmt == "jsonl":
        texts, labels = _read_jsonl(content, name, text_column, label_column)
    else:
        texts, labels = _read_table(content, name, "\t" if fmt == "tsv" else ",", text_column, label_column)
    if not texts:
        raise InputFileError(f"{name} holds no texts")
    return texts, labels


def _read_table(
    content: str, name: str, delimiter: str, text_column: str, label_column: str | None
) -> tuple[list[str], list[str] | None]:
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    columns = reader.fieldnames or []
    for col in (text_column, label_column):
        if col and col not in columns:
            raise InputFileError(f"{name}: no column {col!r}; columns are {columns}")
    texts, labels = [], []
    for row in reader:
        texts.append(row.get(text_column) or "")
        if label_column:
            labels.append(str(row.get(label_column, "")))
    return texts, labels if label_column else None


def _read_jsonl(
    content: str, name: str, text_column: str, label_column: str | None
) -> tuple[list[str], list[str] | None]:
    texts, labels = [], []
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{name} line {n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or text_column not in obj:
            raise InputFileError(f"{name} line {n}: no {text_column!r} field")
        if label_column and label_column not in obj:
            raise InputFileError(f"{name} line {n}: no {label_column!r} field")
        texts.append(str(obj[text_column]))
        if label_column:
            labels.append(str(obj[label_column]))
    return texts, labels if label_column else None
