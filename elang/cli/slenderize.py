"""`elang slenderize`: COST-EFF width pruning and distilled retraining of a multi-exit checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from elang.data import spec as dataspec
from elang.data.datasets import QUICK_SIZES_ARG
from elang.export.classify.train import trained_max_length
from elang.export.pipeline import default_cache


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slenderize",
        help="prune a multi-exit checkpoint's heads and FFN neurons by importance, then retrain its exits "
        "distilled from it (COST-EFF)",
    )
    p.add_argument("checkpoint", type=Path, help="a multi-exit checkpoint (elang train --exits ...)")
    p.add_argument("--width", type=float, default=0.5, help="share of attention heads kept per layer (default 0.5)")
    p.add_argument("--ffn-width", type=float, default=None, help="share of FFN neurons kept (default: --width)")
    p.add_argument("--importance-texts", type=int, default=1024, help="training texts for the importance (1024)")
    p.add_argument("--epochs", type=int, default=2, help="retraining epochs (default 2)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument(
        "--unlabelled", type=int, default=0, help="texts no split uses, distilled as well (default 0: training texts)"
    )
    p.add_argument("--max-length", type=int, default=None, help="default: the checkpoint's training length")
    p.add_argument("--quick", action="store_true", help=f"a first look: {QUICK_SIZES_ARG} rows, 256 texts, one epoch")
    p.add_argument("--cache-dir", type=Path, default=None, help="default: $ELANG_CACHE or ~/.cache/elang")
    dataspec.add_arguments(p)
    p.set_defaults(func=cmd_slenderize)


def cmd_slenderize(args: argparse.Namespace) -> int:
    from elang.export.exits.slenderize import SlenderPlan, slenderize

    if args.quick:
        args.sizes = args.sizes or QUICK_SIZES_ARG
        args.importance_texts, args.epochs = min(args.importance_texts, 256), 1
    plan = SlenderPlan(
        width=args.width,
        ffn_width=args.ffn_width,
        importance_texts=args.importance_texts,
        epochs=args.epochs,
        lr=args.lr,
        unlabelled=args.unlabelled,
    )
    splits, spec = dataspec.splits_for(args)
    print(f"data: {splits.describe()}")
    max_length = args.max_length or trained_max_length(args.checkpoint) or 128
    result = slenderize(args.checkpoint, plan, splits, args.cache_dir or default_cache(), max_length)
    dataspec.save(result.checkpoint, spec, splits)
    m = result.metrics
    print(f"checkpoint {result.checkpoint}")
    print(
        f"parameters {m['student_parameters'] / 1e6:.1f}M of {m['teacher_parameters'] / 1e6:.1f}M "
        f"({m['student_parameters'] / m['teacher_parameters']:.1%}); {m['steps']} steps in "
        f"{m['train_seconds'] / 60:.1f} min"
    )
    print("exit layer | validation | test | FLOPs vs the full model")
    print("---|---|---|---")
    for i, layer in enumerate(m["exit_layers"]):
        print(
            f"{layer} | {m['exit_validation_accuracy'][i]:.2%} | {m['exit_test_accuracy'][i]:.2%} | "
            f"{m['flops_share_per_exit'][i]:.1%}"
        )
    if m.get("warning"):
        print(f"WARNING: {m['warning']}", file=sys.stderr)
    return 0
