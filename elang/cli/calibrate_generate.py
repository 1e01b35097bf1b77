"""``elang calibrate`` on a repository that serves seq2seq models (its router has ``task: generate``).

Same targets as the classifier pair, read for sequences: ``--max-accuracy-drop`` is the WER increase
over Super in points, ``--target-accuracy`` is 1 - WER, ``--super-fraction`` and ``--compute-budget``
(cost relative to Super-only, from measured generation times) as for the pair. Data: CMUdict by
default; ``--data FILE`` with ``--text-column`` (input, default "input") and ``--label-column``
(target, default "target"); ``--sizes validation,test,calibration``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from elang.calibration import generate as sc
from elang.cli.calibrate import target_from_args
from elang.cli.train_seq2seq import seq2seq_splits as splits
from elang.client.client import ElangClient
from elang.core.settings import RouterSettings
from elang.export.pipeline import default_cache
from elang.repository.config import parameters, router_task
from elang.repository.writer import parse_config
from elang.tasks import task_from_parameters


def seq2seq_splits(args: argparse.Namespace):  # noqa: ANN201 - Seq2SeqSplits
    """The splits from the shared data options (``--text-column`` is the input, ``--label-column`` the target)."""

    return splits(
        args.data, (args.text_column or ["input"])[0], args.label_column or "target", args.sizes, args.split_seed
    )


def certificate(cal: dict) -> str:
    """The calibration's certified bound as the report prints it ("" when none was certified)."""
    if cal.get("certified_wer_increase_bound") is not None:
        return f", certified: routed WER at most {100 * cal['certified_wer_increase_bound']:+.2f} pt over Super's"
    if cal.get("certified_wer_bound") is not None:
        return f", certified WER bound {100 * cal['certified_wer_bound']:.2f}%"
    return ""


def serves_seq2seq(repository: Path | None, url: str | None) -> bool:
    """Whether the repository (or the running server) routes generating stages."""

    if repository is not None:
        task = router_task(repository)
    else:
        task = task_from_parameters(ElangClient(url).router_info())
    return task is not None and task.family == "generation"


def run(args: argparse.Namespace) -> int:

    router = args.router or "elang"
    if args.mean_exit_layer is not None:
        raise ValueError("--mean-exit-layer is a target for multi-exit routers, not a seq2seq one")
    cfg = parse_config((Path(args.repository) / router / "config.pbtxt").read_text())
    settings = RouterSettings.from_parameters(parameters(cfg))
    target = target_from_args(args)
    splits = seq2seq_splits(args)
    print(f"data: {splits.describe()}")
    cache = args.cache_dir or default_cache()
    split = "validation" if args.split == "validation" else "calibration"
    ds = getattr(splits, split)
    scores = sc.cached_scores(args.repository, split, ds, splits.fingerprint, cache, settings.max_new_tokens)
    costs = sc.measure_costs(args.repository, ds.inputs, settings.max_new_tokens)
    ratio = costs["swift"] / costs["super"]
    print(
        f"cost per input: swift {1e3 * costs['swift']:.2f} ms, super {1e3 * costs['super']:.2f} ms (ratio {ratio:.3f})"
    )
    record, rows = sc.calibrate(
        scores,
        target,
        args.criterion or "auto",
        None if args.no_margin else args.confidence,
        ratio,
        splits.fingerprint,
        names=sc.served_aggregators(Path(args.repository), settings.stages),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = sc.table_markdown(rows, scores)
    cal = record.calibration
    lines = [
        f"criterion {record.criterion}, threshold {record.threshold:.6g} for {target.describe()} (WER read as 1 - accuracy)",
        f"held-out calibration ({cal['inputs_held_out']} inputs): Super share {100 * cal['super_share']:.1f}%, "
        f"WER {100 * cal['wer']:.2f}% (Super {100 * cal['super_wer']:.2f}%, Swift {100 * cal['swift_wer']:.2f}%)"
        + certificate(cal),
        "",
        f"aggregators on the {split} split:",
        table,
    ]
    if args.evaluate_on == "test":
        test = sc.cached_scores(
            args.repository, "test", splits.test, splits.fingerprint, cache, settings.max_new_tokens
        )
        ev = sc.evaluate(record, test)
        record.notes["test"] = ev
        lines += [
            "",
            f"on test ({ev['inputs']} inputs): Super share {100 * ev['super_share']:.1f}%, WER {100 * ev['wer']:.2f}% "
            f"PER {100 * ev['per']:.2f}% (Super {100 * ev['super_wer']:.2f}% / {100 * ev['super_per']:.2f}%, "
            f"Swift {100 * ev['swift_wer']:.2f}% / {100 * ev['swift_per']:.2f}%)",
            "",
            "aggregators on test:",
            sc.table_markdown(sc.aggregator_table(test, sc.served_aggregators(Path(args.repository), settings.stages)), test),
        ]
    text = "\n".join(lines)
    print(text)
    (out / "calibration.json").write_text(record.to_json())
    (out / "report.md").write_text(text + "\n")
    (out / "aggregators.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    if args.apply:
        path = sc.apply_record(args.repository, record, router)
        print(f"applied to {path}")
    print(f"wrote {out}", file=sys.stderr)
    return 0
