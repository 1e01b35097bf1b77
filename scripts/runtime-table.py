#!/usr/bin/env python3
"""Issue 26's table of stage variants: ms per text offline (ONNX Runtime, batch 1 and 32, best of
3 rounds) and test accuracy, with argmax agreement against a reference stage.

    .venv/bin/python scripts/runtime-table.py REPO super super_int8 super_int8s [--reference super]
        [--limit 800] [data options as elang export's]

Each STAGE is a python-ort classifier folder of REPO (REPO/STAGE/1). The data are the
repository's remembered data unless given. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from elang.calibration.classify import served_engine, stage_classifier, stage_cost
from elang.data import spec as dataspec
from elang.repository.config import model_config
from elang.runtimes.classifier import logits_in_batches


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repository", type=Path)
    p.add_argument("stages", nargs="+")
    p.add_argument("--reference", default=None, help="the stage agreement is measured against (default: the first)")
    p.add_argument("--limit", type=int, default=800, help="test texts for accuracy and agreement (default 800)")
    dataspec.add_arguments(p, remembered=True)
    args = p.parse_args()
    splits, spec = dataspec.splits_for(args, args.repository)
    test = splits.test
    n = min(args.limit, len(test.texts)) if args.limit else len(test.texts)
    texts, labels = test.texts[:n], np.asarray(test.labels[:n])
    print(f"data: {spec.describe() if spec else 'default'}; {n} test texts", file=sys.stderr)
    rows, logits = [], {}
    for stage in args.stages:
        if model_config(args.repository, stage) is None:
            raise SystemExit(f"{args.repository} has no model {stage!r}")
        logits[stage] = logits_in_batches(stage_classifier(args.repository, stage), texts)
        ms1 = stage_cost(args.repository, stage, texts, batch=1)
        ms32 = stage_cost(args.repository, stage, texts, batch=32)
        rows.append((stage, ms1, ms32, float(np.mean(logits[stage].argmax(1) == labels))))
        engine = "/".join(served_engine(args.repository, stage))
        print(f"{stage} ({engine}): {ms1:.2f} / {ms32:.2f} ms per text", file=sys.stderr)
    ref = args.reference or args.stages[0]
    print(
        f"| stage (engine/precision) | ms/text batch 1 | ms/text batch 32 | speed vs {ref} (batch 32) | test accuracy | agreement with {ref} |"
    )
    print("|---|---|---|---|---|---|")
    base = dict((r[0], r) for r in rows)[ref]
    for stage, ms1, ms32, acc in rows:
        agree = float(np.mean(logits[stage].argmax(1) == logits[ref].argmax(1)))
        print(
            f"| {stage} ({'/'.join(served_engine(args.repository, stage))}) | {ms1:.2f} | {ms32:.2f} | {base[2] / ms32:.2f}x | {acc:.2%} | {agree:.2%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
