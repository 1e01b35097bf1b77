"""`elang export-exits`: a multi-exit checkpoint -> segment stages and a multi-exit router."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from elang import contract as c
from elang.data import spec as dataspec
from elang.export.classify.tiny import sample_rows
from elang.export.classify.train import trained_max_length
from elang.repository.exits import ExitModelSpec, write_exit_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-exits",
        help="export a multi-exit checkpoint as segments (parity checked per exit) with a router that exits per row",
    )
    p.add_argument("checkpoint", type=Path, help="a multi-exit checkpoint (elang train --exits / elang slenderize)")
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument(
        "--exits",
        default=None,
        metavar="LAYERS",
        help="serve these of the trained exits, e.g. 4,12 (default: all). Two exits {k, top} make "
        "E-LANG with the model's own early exit as Swift: escalated rows continue from layer k",
    )
    p.add_argument(
        "--name",
        default="exits",
        help="stages are NAME_<layer> (exits_2, exits_4, ...) and the router elang_NAME (default: exits)",
    )
    p.add_argument(
        "--policy", default="softmax", choices=("softmax", "entropy", "energy", "patience"), help="exit policy"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the policy's threshold at every exit until `elang calibrate --exits` sets one "
        "(default: 0.9 softmax, 0.3 entropy, -3 energy, 2 patience)",
    )
    p.add_argument("--max-length", type=int, default=None, help="default: the checkpoint's training length")
    p.add_argument("--atol", type=float, default=1e-4, help="max |ONNX - PyTorch| per exit accepted")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per segment (0: all cores)")
    p.add_argument("--gpu", action="store_true", help="CUDA provider and GPU instances in the configs")
    p.add_argument(
        "--segments-in",
        choices=("router", "stages"),
        default="router",
        help="router (default): every segment runs in the router's process, hidden states never cross "
        "a process; stages: each segment over BLS in its own stub (the segments stay served either way)",
    )
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=cmd_export_exits)


DEFAULT_THRESHOLDS = {"softmax": 0.9, "entropy": 0.3, "energy": -3.0, "patience": 2.0}


def cmd_export_exits(args: argparse.Namespace) -> int:
    from elang.export.exits.cut import export_segments
    from elang.export.exits.model import parse_exits

    args.repository.mkdir(parents=True, exist_ok=True)
    dataspec.adopt(args.checkpoint, args.repository, args.allow_other_data)
    max_length = args.max_length or trained_max_length(args.checkpoint) or c.DEFAULT_MAX_LENGTH
    splits, _ = dataspec.splits_for(args, args.repository, required=False)
    texts = [t for t, _ in sample_rows()] + (list(splits.validation.texts[:256]) if splits is not None else [])
    exits = parse_exits(args.exits) if args.exits else None
    threshold = DEFAULT_THRESHOLDS[args.policy] if args.threshold is None else args.threshold
    with tempfile.TemporaryDirectory(prefix="elang-segments-") as tmp:
        report = export_segments(args.checkpoint, Path(tmp), texts, exits, max_length, args.atol)
        names = write_exit_model(
            args.repository,
            ExitModelSpec(
                Path(tmp),
                prefix=f"{args.name}_",
                router=f"{c.ROUTER_MODEL}_{args.name}",
                policy=args.policy,
                threshold=threshold,
                max_length=max_length,
                max_batch_size=args.max_batch_size,
                intra_op_threads=args.threads,
                gpu=args.gpu,
                inline="all" if args.segments_in == "router" else "none",
            ),
        )
    print("\n".join(report.lines()))
    print(f"wrote {', '.join(names)} into {args.repository} ({args.policy}, threshold {threshold:g} at every exit)")
    return 0
