"""`elang pairs`: which Swift pays back its cost at the user's target, against one Super.

Every candidate is a repository holding an exported ``swift`` stage (any layer count, distilled
or not, int8 or fp32). Each is calibrated against the Super of ``--repository`` exactly as
``elang calibrate`` would (same split, criteria and certificate), checked on test, and costed
offline with ONNX Runtime. The estimated speed-up over Super-only is
``1 / (cost(Swift) / cost(Super) + certified Super share)``: the compute-bound bound that
the server reaches within a few percent at concurrency 8 (docs/BENCHMARKS.md). The best
candidate is recommended; ``elang bench`` then measures it through the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.calibration import classify as cal
from elang.calibration.thresholds import Target, TargetError
from elang.data import spec as dataspec
from elang.export.pipeline import default_cache

log = logging.getLogger(__name__)


@dataclass
class CandidateResult:
    name: str
    repository: str
    swift_accuracy: float  # on test
    cost_ms: float
    cost_ratio: float
    criterion: str | None
    auroc: dict[str, float]  # per criterion, "Swift wrong", on test
    super_fraction: float | None  # certified on calibration; None: target not met
    test_accuracy: float | None
    test_super_fraction: float | None
    test_gap_pt: float | None  # routed minus required accuracy on test
    speedup: float | None
    error: str = ""


def parse_candidates(values: list[str]) -> list[tuple[str, Path]]:
    """``NAME=REPOSITORY`` pairs; a candidate without NAME is named after its folder."""
    out = []
    for v in values:
        name, _, path = v.rpartition("=")
        p = Path(path)
        if not (p / c.SWIFT_MODEL / "config.pbtxt").is_file():
            raise FileNotFoundError(f"candidate {v!r}: {p} holds no exported swift stage (elang export --as swift)")
        out.append((name or p.name, p))
    if len({n for n, _ in out}) != len(out):
        raise ValueError(f"candidate names must differ: {[n for n, _ in out]}")
    return out


def evaluate_candidates(
    super_repository: Path,
    candidates: list[tuple[str, Path]],
    splits,  # noqa: ANN001 - elang.data.datasets.Splits
    target,  # noqa: ANN001 - elang.calibration.thresholds.Target
    criterion: str,
    confidence: float | None,
    cache_dir: Path,
    super_stage: str = c.SUPER_MODEL,
) -> list[CandidateResult]:
    from tqdm import tqdm

    cal_ds = splits.calibration if splits.calibration is not None else splits.validation
    cal_name = "calibration" if splits.calibration is not None else "validation"
    fp = splits.fingerprint

    def logits(repo: Path, stage: str, name: str, ds) -> np.ndarray:  # noqa: ANN001
        return cal.cached_stage_logits(repo, stage, name, ds, fp, cache_dir, None)

    sup_cal = logits(super_repository, super_stage, cal_name, cal_ds)
    sup_test = logits(super_repository, super_stage, "test", splits.test)
    super_ms = cal.stage_cost(super_repository, super_stage, cal_ds.texts)
    results = []
    for name, repo in tqdm(candidates, desc="candidates", unit="swift"):
        sw_cal = logits(repo, c.SWIFT_MODEL, cal_name, cal_ds)
        sw_test = logits(repo, c.SWIFT_MODEL, "test", splits.test)
        ms = cal.stage_cost(repo, c.SWIFT_MODEL, cal_ds.texts)
        on_cal = cal.Scores(sw_cal, sup_cal, cal_ds.labels, cal.text_lengths(cal_ds.texts))
        on_test = cal.Scores(sw_test, sup_test, splits.test.labels, cal.text_lengths(splits.test.texts))
        costs = {c.SWIFT_MODEL: ms, c.SUPER_MODEL: super_ms}
        row = CandidateResult(
            name, str(repo), float(on_test.swift_ok.mean()), ms, ms / super_ms, None, {}, None, None, None, None, None
        )
        try:
            record, _, _ = cal.calibrate(on_cal, target, criterion, confidence, costs, fp)
        except TargetError as exc:
            row.error = str(exc)
            results.append(row)
            continue
        res = cal.evaluate_record(record, on_test)
        table = cal.criterion_table(on_test, record.temperature, cal.record_policies(record))
        required = record.calibration["required_accuracy"]
        if target.kind == "accuracy_drop":
            required = res["super_accuracy"] - target.value / 100
        row.criterion = record.criterion
        row.auroc = {r.name: r.auroc for r in table}
        row.super_fraction = record.calibration["super_fraction"]
        row.test_accuracy = res["routed_accuracy"]
        row.test_super_fraction = res["super_fraction"]
        row.test_gap_pt = None if required is None else (res["routed_accuracy"] - required) * 100
        row.speedup = 1 / (row.cost_ratio + row.super_fraction)
        results.append(row)
    return results


def best(results: list[CandidateResult]) -> CandidateResult | None:
    ok = [r for r in results if r.speedup is not None]
    return max(ok, key=lambda r: r.speedup) if ok else None


def markdown(results: list[CandidateResult], super_accuracy: float) -> str:
    lines = [
        "| Swift | Swift acc (test) | cost vs Super | criterion | AUROC Swift wrong (energy / softmax / learned) "
        "| Super share (certified) | routed acc (test) | gap to target (test) | est. speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.speedup is None:
            lines.append(f"| {r.name} | {r.swift_accuracy:.2%} | {r.cost_ratio:.3f} | - | - | not met | - | - | - |")
            continue
        au = " / ".join(f"{r.auroc.get(k, float('nan')):.3f}" for k in ("energy", "softmax", "learned"))
        gap = "-" if r.test_gap_pt is None else f"{r.test_gap_pt:+.2f} pt"
        lines.append(
            f"| {r.name} | {r.swift_accuracy:.2%} | {r.cost_ratio:.3f} | {r.criterion} | {au} | {r.super_fraction:.1%} "
            f"| {r.test_accuracy:.2%} | {gap} | {r.speedup:.2f}x |"
        )
    lines.append(f"\nSuper alone: {super_accuracy:.2%} on test.")
    return "\n".join(lines)


# ---------------------------------------------------------------- command


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pairs", help="compare Swift candidates against one Super at a target; recommend the best")
    p.add_argument("--repository", type=Path, required=True, help="repository holding the Super")
    p.add_argument("--super", dest="super_stage", default="super", help="the Super's stage name (default super)")
    p.add_argument(
        "--candidate",
        action="append",
        required=True,
        metavar="NAME=REPOSITORY",
        help="a repository with an exported swift stage; give once per candidate",
    )
    t = p.add_mutually_exclusive_group()
    t.add_argument("--max-accuracy-drop", type=float, default=None, help="points below Super allowed (default 0.5)")
    t.add_argument("--target-accuracy", type=float, default=None)
    p.add_argument("--criterion", choices=("auto", "energy", "softmax", "entropy", "learned"), default="auto")
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--out", type=Path, default=Path("pairs"), help="folder for pairs.md and pairs.json")
    p.add_argument("--cache-dir", type=Path, default=None)
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    if args.target_accuracy is not None:
        target = Target("accuracy", args.target_accuracy)
    else:
        target = Target("accuracy_drop", 0.5 if args.max_accuracy_drop is None else args.max_accuracy_drop)
    target.validate()
    candidates = parse_candidates(args.candidate)
    splits, spec = dataspec.splits_for(args, args.repository)
    print(f"data: {spec.describe()}: {splits.describe()}")
    print(f"target: {target.describe()} at confidence {args.confidence:g}, criterion {args.criterion}")
    cache = args.cache_dir or default_cache()
    results = evaluate_candidates(
        args.repository, candidates, splits, target, args.criterion, args.confidence, cache, args.super_stage
    )

    sup = cal.cached_stage_logits(
        args.repository, args.super_stage, "test", splits.test, splits.fingerprint, cache, None
    )
    table = markdown(results, float(np.mean(sup.argmax(1) == splits.test.labels)))
    print(table)
    for r in results:
        if r.error:
            print(f"{r.name}: {r.error}", file=sys.stderr)
    top = best(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pairs.md").write_text(table + "\n")
    (args.out / "pairs.json").write_text(
        json.dumps(
            {"target": asdict(target), "results": [asdict(r) for r in results], "best": top and top.name}, indent=2
        )
    )
    if top is None:
        print("no candidate meets the target: keep Super only, or loosen the target", file=sys.stderr)
        return 3
    print(f"\nrecommended Swift: {top.name} ({top.repository}): est. {top.speedup:.2f}x Super-only")
    return 0
