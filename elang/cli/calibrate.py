"""`elang calibrate`: the command around :mod:`elang.calibration.classify` (options, report, files)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

from elang import contract as c
from elang.calibration import classify as cal
from elang.calibration.thresholds import Target
from elang.client.client import ElangClient
from elang.data import spec as dataspec
from elang.export.pipeline import default_cache
from elang.repository.config import router_task
from elang.tasks import get_task, task_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="choose the router threshold for a target, compare criteria, check on test")
    p.add_argument("--repository", type=Path, required=True, help="repository holding swift, super and elang")
    p.add_argument(
        "--super",
        dest="super_stage",
        default="super",
        help="the Super stage (default super; e.g. super_int8: calibrates and applies to router elang_super_int8)",
    )
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--target-accuracy", type=float, help="routed accuracy to reach, e.g. 0.78")
    t.add_argument("--max-accuracy-drop", type=float, help="points below Super's accuracy allowed, e.g. 0.5")
    t.add_argument("--super-fraction", type=float, help="share of texts to send to Super, e.g. 0.2")
    t.add_argument(
        "--compute-budget",
        type=float,
        help="expected cost relative to Super only, e.g. 0.4 (multi-exit: share of the full model's layers run)",
    )
    t.add_argument("--mean-exit-layer", type=float, help="multi-exit routers: average layer that answers, e.g. 6")
    p.add_argument(
        "--router",
        default=None,
        help="calibrate this router instead (e.g. elang_exits: a multi-exit router, one threshold for every exit)",
    )
    p.add_argument(
        "--criterion",
        default=None,
        help="what decides escalation, by the task the router serves: "
        + criteria_help()
        + ". auto: the criterion that meets the target with the least Super on held-out data",
    )
    p.add_argument(
        "--confidence", type=float, default=0.9, help="probability that an accuracy target holds (default 0.9)"
    )
    p.add_argument("--no-margin", action="store_true", help="use the point estimate on calibration (no guarantee)")
    p.add_argument(
        "--coverage-sims",
        type=int,
        default=200,
        help="resampled calibration sets to measure the guarantee's coverage (0: off; default 200)",
    )
    p.add_argument(
        "--split",
        choices=("calibration", "validation"),
        default="calibration",
        help="split to calibrate on (validation also picked the checkpoint: use it only without a calibration split)",
    )
    p.add_argument("--no-temperature", action="store_true", help="keep T = 1 instead of fitting it")
    p.add_argument("--url", default=None, help="run swift and super through this server instead of offline")
    p.add_argument("--evaluate-on", choices=("test",), default=None, help="report how the choice lands on test")
    p.add_argument("--tolerance", type=float, default=0.5, help="points of accuracy gap on test that warn")
    p.add_argument("--out", type=Path, default=Path("calibration"), help="folder for record, table and plot")
    p.add_argument("--apply", action="store_true", help="write the result into the repository's router config")
    p.add_argument(
        "--force",
        action="store_true",
        help="--apply even a threshold whose expected compute is at or above the Super's alone (refused otherwise)",
    )
    p.add_argument("--reload-url", default=None, help="after --apply, reload the router on this server (gRPC)")
    p.add_argument("--cache-dir", type=Path, default=None)
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=run)


def target_from_args(args: argparse.Namespace):  # noqa: ANN201 - elang.calibration.thresholds.Target
    """The one target given (accuracy, accuracy drop, Super fraction or compute budget), validated."""

    kinds = {
        "accuracy": args.target_accuracy,
        "accuracy_drop": args.max_accuracy_drop,
        "super_fraction": args.super_fraction,
        "compute_budget": args.compute_budget,
    }
    kind, value = next((k, v) for k, v in kinds.items() if v is not None)
    target = Target(kind, value)
    target.validate()
    return target


def criteria_help() -> str:
    """Each task's criteria and default, from the task registry."""
    parts = []
    for name in task_names():
        task = get_task(name)
        auto = ("auto",) if task.auto_criterion else ()
        parts.append(f"{name}: {', '.join((*auto, *task.criteria))} (default {task.default_criterion})")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    """``elang calibrate``: the command of the task the router serves (``Task.calibrate_command``)."""
    task = router_task(args.repository, args.router or c.ROUTER_MODEL) or get_task(c.TASK_CLASSIFY)
    module, _, function = task.calibrate_command.partition(":")
    return getattr(importlib.import_module(module), function)(args)


def run_pair(args: argparse.Namespace) -> int:
    """``elang calibrate`` of a classifier pair's router (``elang`` or ``elang_<super>``)."""

    task = get_task(c.TASK_CLASSIFY)
    if args.criterion not in (None, "auto", "patience", *task.criteria):
        raise ValueError(f"--criterion {args.criterion!r}: a classifier router takes auto, {', '.join(task.criteria)}")
    if args.mean_exit_layer is not None:
        raise ValueError("--mean-exit-layer is a target for multi-exit routers (give --router elang_exits)")
    args.criterion = args.criterion or task.default_criterion
    if args.criterion == "patience":
        raise ValueError("patience (PABEE) decides between exits of one model: give a multi-exit --router")
    target = target_from_args(args)
    splits, spec = dataspec.splits_for(args, args.repository)
    print(f"data: {spec.describe()}: {splits.describe()}")
    split = args.split
    if split == "calibration" and splits.calibration is None:
        print(
            "WARNING: these splits have no calibration split; calibrating on validation, which also picked the "
            "checkpoint (add calibration rows to the split column, or a fourth --sizes value)",
            file=sys.stderr,
        )
        split = "validation"
    ds = splits.get(split)
    cache = args.cache_dir or default_cache()
    scores = cal.cached_scores(args.repository, split, ds, splits.fingerprint, cache, args.url, args.super_stage)
    for stage in (c.SWIFT_MODEL, args.super_stage):
        print(f"{stage} on the {split} texts: {cal.stage_truncation(args.repository, stage, ds.texts, ds.pairs)}")
    costs = cal.measure_costs(args.repository, ds.texts, super_stage=args.super_stage)
    ratio = costs["swift"] / costs["super"]
    record, choice, rows = cal.calibrate(
        scores,
        target,
        args.criterion,
        None if args.no_margin else args.confidence,
        costs,
        splits.fingerprint,
        fit_t=not args.no_temperature,
        coverage_sims=args.coverage_sims,
    )
    v = record.calibration
    print(
        f"{split}: {v['examples']} texts: {v['fit_examples']} fit T and the learned rule, {v['held_out_examples']} "
        f"held out choose the criterion and the threshold; Swift {v['swift_accuracy']:.2%}, Super {v['super_accuracy']:.2%}"
    )
    print(
        f"costs (as served, batch 32): swift {costs['swift']:.2f} ms/text ({_engine(args.repository, 'swift')}), "
        f"super {costs['super']:.2f} ms/text ({_engine(args.repository, args.super_stage)}), ratio {ratio:.3f}"
    )
    print(f"temperature T = {record.temperature:.3f}; Swift ECE {v['ece_before']:.4f} -> {v['ece_after']:.4f}")
    print()
    print(cal.criterion_markdown(rows))
    print()
    print(f"target: {target.describe()}; criterion {record.criterion} ({args.criterion} requested)")
    print(
        f"chosen threshold {record.threshold!r}: Super fraction {v['super_fraction']:.1%}, routed accuracy "
        f"{v['routed_accuracy']:.2%}, relative compute {v['relative_compute']:.3f}"
    )
    if choice.lower_bound is not None:
        margin = v["super_fraction"] - v["point_estimate_fraction"]
        if target.kind == "accuracy_drop":
            bound = f"routed minus Super accuracy (paired) {choice.lower_bound * 100:+.2f} pt"
        else:
            bound = f"routed accuracy {choice.lower_bound:.2%}"
        print(f"guarantee: {v['guarantee']}; lower confidence bound of {bound}")
        print(
            f"the point estimate would send {v['point_estimate_fraction']:.1%} to Super: the guarantee costs "
            f"{margin * 100:+.1f} pt of Super share"
        )
        if v["coverage"]:
            cv = v["coverage"]
            print(
                f"coverage by simulation ({cv['simulations']} resampled calibration sets of {cv['calibration_size']}): "
                f"the target held in {cv['coverage']:.1%} (stated: {args.confidence:g} overall, {cv['stated']:.3g} for "
                f"the chosen criterion); mean Super share {cv['mean_super_fraction']:.1%}"
            )
    for w in record.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    loss = cal.does_not_pay(record, rows, scores, ratio)
    if loss:
        record.warnings.append(loss.splitlines()[0])
        print("\n" + "!" * 72 + "\nWARNING: " + loss.replace("\n", "\n  ") + "\n" + "!" * 72, file=sys.stderr)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(record.to_json())
    policies = cal.record_policies(record)
    table = cal.curve_markdown(scores, record.temperature, ratio, policies=policies)
    (out / "curve.md").write_text(table + "\n")
    png = cal.plot_curves(
        scores, record.temperature, ratio, out / "curve.png", (v["super_fraction"], v["routed_accuracy"]), policies
    )
    print()
    print(
        f"routing curve on all {v['examples']} {split} texts (fit and held-out parts together; the threshold "
        f"was chosen on the {v['held_out_examples']} held out):"
    )
    print(table)
    print(f"\nrecord {out / 'calibration.json'}, curve {out / 'curve.md'} and {png}")
    status = 0
    if args.evaluate_on:
        status = _evaluate(args, cal, record, target, splits, cache, out)
    if args.apply and loss and not args.force:
        print(
            "not applied: this threshold does not pay (above); give a target that pays, or --force to apply it",
            file=sys.stderr,
        )
        return 4
    if args.apply:
        path = cal.apply_record(args.repository, record, cal.router_for(args.super_stage))
        print(f"applied {record.version} to {path}")
        if args.reload_url:
            info = ElangClient(args.reload_url).reload_router()
            print(f"reloaded the router on {args.reload_url}: {info}")
    return status


def _evaluate(args, cal, record, target, splits, cache, out: Path) -> int:  # noqa: ANN001
    """How the recorded choice lands on the test split; 3 when it misses by more than the tolerance."""
    test = cal.cached_scores(
        args.repository, "test", splits.test, splits.fingerprint, cache, args.url, args.super_stage
    )
    res = cal.evaluate_record(record, test)
    required = record.calibration["required_accuracy"]
    if target.kind == "accuracy_drop":
        required = res["super_accuracy"] - target.value / 100
    table = cal.criterion_table(test, record.temperature, cal.record_policies(record), required)
    res["criteria"] = [asdict(r) for r in table]
    print(
        f"\non {args.evaluate_on} ({res['examples']} texts): routed accuracy {res['routed_accuracy']:.2%}, Super "
        f"fraction {res['super_fraction']:.1%} (Swift {res['swift_accuracy']:.2%}, Super {res['super_accuracy']:.2%})"
    )
    print(
        f"criteria on {args.evaluate_on} (last column: the point estimate with a threshold picked on {args.evaluate_on} itself)"
    )
    print(cal.criterion_markdown(table))
    status = 0
    if required is not None:
        gap = (res["routed_accuracy"] - required) * 100
        print(f"gap to the target on {args.evaluate_on}: {gap:+.2f} pt (tolerance {args.tolerance} pt)")
        if gap < -args.tolerance:
            print(f"WARNING: {args.evaluate_on} misses the target by more than {args.tolerance} pt", file=sys.stderr)
            status = 3
    else:
        gap = (res["super_fraction"] - record.calibration["super_fraction"]) * 100
        print(f"Super fraction gap on {args.evaluate_on}: {gap:+.1f} pt")
    (out / "evaluation.json").write_text(json.dumps(res, indent=2))
    return status


def _engine(repository: Path, stage: str) -> str:
    """How a stage runs, for the costs line (``engine/precision``)."""
    try:
        return "/".join(cal.served_engine(repository, stage))
    except (OSError, ValueError):
        return "unknown engine"
