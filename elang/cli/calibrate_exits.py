"""`elang calibrate --router <multi-exit router>`: the report and files around :mod:`elang.calibration.exits`."""

from __future__ import annotations

import argparse
import json
import sys

from elang.calibration import exits as ec
from elang.calibration.exits import ExitRouter
from elang.client.client import ElangClient
from elang.data import spec as dataspec
from elang.export.pipeline import default_cache


def run(args: argparse.Namespace) -> int:
    """``elang calibrate --router R`` of a multi-exit router (the exits task's calibrate command)."""

    return run_exits(args, ExitRouter.read(args.repository, args.router))


def run_exits(args: argparse.Namespace, router) -> int:  # noqa: ANN001 - elang.calibration.exits.ExitRouter

    kinds = {
        "accuracy": args.target_accuracy,
        "accuracy_drop": args.max_accuracy_drop,
        "compute_budget": args.compute_budget,
        "mean_exit_layer": args.mean_exit_layer,
    }
    if args.super_fraction is not None:
        raise ValueError("--super-fraction is a pair target; a multi-exit router takes --mean-exit-layer instead")
    kind, value = next((k, v) for k, v in kinds.items() if v is not None)
    policy = args.criterion or "softmax"
    if policy in ("auto", "learned"):
        raise ValueError(f"--criterion {policy} is for a pair; a multi-exit router takes {', '.join(ec.EXIT_POLICIES)}")
    splits, spec = dataspec.splits_for(args, args.repository)
    print(f"data: {spec.describe()}: {splits.describe()}")
    split = args.split
    if split == "calibration" and splits.calibration is None:
        print(
            "WARNING: no calibration split; calibrating on validation, which also picked the checkpoint",
            file=sys.stderr,
        )
        split = "validation"
    ds = splits.get(split)
    cache = args.cache_dir or default_cache()
    logits = ec.exit_logits(router, split, ds, splits.fingerprint, cache)
    record = ec.calibrate_exits(
        router,
        logits,
        ds.labels,
        policy,
        kind,
        value,
        None if args.no_margin else args.confidence,
        splits.fingerprint,
        fit_t=not args.no_temperature,
    )
    v = record.calibration
    print(
        f"{router.name}: exits after layers {', '.join(map(str, router.layers))} of {router.layers_total}; "
        f"{split}: {v['examples']} texts, {v['fit_examples']} fit the temperatures and place the candidates, "
        f"{v['held_out_examples']} held out choose and certify"
    )
    print("temperatures per exit: " + ", ".join(f"{t:.3f}" for t in record.temperatures))
    print(f"target: {ec.describe_target(kind, value)}; policy {policy}")
    print()
    print(ec.candidates_markdown(record))
    print()
    print(
        f"chosen threshold {record.threshold!r}: accuracy {v['accuracy']:.2%} (last exit {v['last_exit_accuracy']:.2%}), "
        f"mean exit layer {v['mean_exit_layer']:.2f}, {v['layer_share']:.1%} of the layers run, "
        f"{v['compute_share']:.1%} of the full model's FLOPs"
    )
    if v["guarantee"]:
        print(f"guarantee: {v['guarantee']}")
    if v["point_estimate"]:
        pe = v["point_estimate"]
        print(
            f"the point estimate would pick {pe['threshold']:.4g} (mean exit layer {pe['mean_exit_layer']:.2f}, "
            f"accuracy {pe['accuracy']:.2%})"
        )
    print()
    print(ec.per_exit_markdown(record))
    for w in record.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(record.to_json())
    curves = ec.exit_curves(logits, ds.labels, record.temperatures, router.layers)
    png = ec.plot_exit_curves(curves, v["last_exit_accuracy"], out / "curve.png", (v["mean_exit_layer"], v["accuracy"]))
    table = ec.curves_markdown(curves, router.layers_total)
    (out / "curve.md").write_text(table + "\n")
    print(f"\nthe policies compared on the held-out part (points, no margin; plot {png}):\n\n{table}")
    status = 0
    if args.evaluate_on:
        test = ec.exit_logits(router, "test", splits.test, splits.fingerprint, cache)
        res = ec.evaluate_exit_record(record, test, splits.test.labels, router.layers_total, router.compute_share())
        print(
            f"\non test ({res['examples']} texts): accuracy {res['accuracy']:.2%} (last exit "
            f"{res['last_exit_accuracy']:.2%}), mean exit layer {res['mean_exit_layer']:.2f}, "
            f"{res['compute_share']:.1%} of the full model's FLOPs, rows per exit {res['rows_per_exit']}"
        )
        if kind == "accuracy_drop":
            gap = (res["accuracy"] - (res["last_exit_accuracy"] - value / 100)) * 100
            print(f"gap to the target on test: {gap:+.2f} pt (tolerance {args.tolerance} pt)")
            if gap < -args.tolerance:
                print(f"WARNING: test misses the target by more than {args.tolerance} pt", file=sys.stderr)
                status = 3
        (out / "evaluation.json").write_text(json.dumps(res, indent=2))
    print(f"\nrecord {out / 'calibration.json'}")
    if args.apply:
        path = ec.apply_exit_record(args.repository, record)
        print(f"applied {record.version} to {path}")
        if args.reload_url:
            info = ElangClient(args.reload_url, model=router.name).reload_router()
            print(f"reloaded {router.name} on {args.reload_url}: {info}")
    return status
