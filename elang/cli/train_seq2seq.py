"""``elang train-seq2seq``: train a T5 Swift or Super from a config (grapheme-to-phoneme by default).

Data: the CMU Pronouncing Dictionary split by word (the default), or ``--data FILE`` with input
and target columns. The data options are shared with ``elang calibrate`` and ``elang bench`` on a
seq2seq repository (:func:`add_data_arguments`, :func:`splits_from_args`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from elang.data.seq2seq import G2P_SIZES, Seq2SeqSet, file_splits, g2p_splits
from elang.export.classify.tiny import sample_rows
from elang.export.generate.stage import export_seq2seq_stage
from elang.export.generate.train import PRESETS, quick, train_seq2seq
from elang.export.pipeline import default_cache


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("seq2seq data (default: CMUdict grapheme-to-phoneme, split by word)")
    g.add_argument("--data", type=Path, default=None, help="CSV/TSV/JSONL file with input and target columns")
    g.add_argument("--input-column", default="input", help="input column (default: input)")
    g.add_argument("--target-column", default="target", help="target column, space-separated tokens (default: target)")
    g.add_argument(
        "--sizes",
        default=None,
        help="validation,test,calibration counts; training takes the rest (default 2000,5000,6000 on CMUdict; "
        "10/20/10%% of a file)",
    )
    g.add_argument("--split-seed", type=int, default=0, help="seed of the shuffle (default 0)")


def splits_from_args(args: argparse.Namespace):  # noqa: ANN201 - Seq2SeqSplits
    return seq2seq_splits(args.data, args.input_column, args.target_column, args.sizes, args.split_seed)


def seq2seq_splits(data, input_column: str, target_column: str, sizes: str | None, seed: int | None):  # noqa: ANN001, ANN201
    """CMUdict (``data`` None) or a user's file, split by input; ``sizes`` "validation,test,calibration"."""

    counts = None
    if sizes:
        try:
            counts = tuple(int(x) for x in sizes.split(","))
        except ValueError:
            raise ValueError(f"--sizes must be three comma-separated counts, got {sizes!r}") from None
    if data is None:
        return g2p_splits(seed or 0, counts or G2P_SIZES)
    return file_splits(data, input_column, target_column, counts, seed or 0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-seq2seq",
        help="train a T5 Swift or Super from a config on a seq2seq task (cached, resumable)",
        description="Train a T5ForConditionalGeneration made from a config, with character and target-token "
        "tokenizers built from the data. Prints the checkpoint folder and its WER/PER.",
    )
    p.add_argument("--preset", choices=("swift", "super"), required=True, help="model size (see docs/SEQ2SEQ.md)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast of the forward pass (default: the preset's; the Super's is on)",
    )
    p.add_argument(
        "--distill-from",
        type=Path,
        default=None,
        help="a trained seq2seq checkpoint (the Super): train on its greedy outputs (sequence-level distillation)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="warm start: a checkpoint of the same preset and data (e.g. the shipped Super) trained on under "
        "this run's schedule: a learning-rate restart",
    )
    p.add_argument(
        "--average-last",
        type=int,
        default=None,
        help="average the weights of the last N epochs (N >= 2) and keep the mean if its validation WER is lower",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="share of the steps spent warming the learning rate up (default: the preset's, 0.05)",
    )
    p.add_argument(
        "--save-every-s",
        type=float,
        default=300.0,
        help="save the training state this often inside an epoch, so a stop costs minutes (default 300; 0: epochs only)",
    )
    p.add_argument("--quick", action="store_true", help="a first look: one epoch on 5000 training inputs")
    p.add_argument("--cache-dir", type=Path, default=None, help="default: $ELANG_CACHE or ~/.cache/elang")
    add_data_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    recipe = PRESETS[args.preset]
    for key in ("epochs", "lr", "batch_size", "seed", "bf16", "average_last", "warmup"):
        if getattr(args, key) is not None:
            recipe = replace(recipe, **{key: getattr(args, key)})
    if args.distill_from is not None:
        recipe = replace(recipe, name=f"{recipe.name}-distilled", distill_from=str(args.distill_from.resolve()))
    if args.init_from is not None:
        recipe = replace(recipe, init_from=str(args.init_from.resolve()))
    splits = splits_from_args(args)
    if args.quick:
        recipe = quick(recipe)
        splits = replace(splits, train=Seq2SeqSet(splits.train.inputs[:5000], splits.train.references[:5000]))
    print(f"data: {splits.describe()}", file=sys.stderr)
    result = train_seq2seq(
        recipe, splits, args.cache_dir or default_cache(), progress=True, save_every_s=args.save_every_s
    )
    m = result.metrics
    print(f"checkpoint {result.checkpoint}")
    print(
        f"{recipe.name}: {m['parameters']:,} parameters, validation WER {100 * m['validation_wer']:.2f}% "
        f"PER {100 * m['validation_per']:.2f}%, test WER {100 * m['test_wer']:.2f}% PER {100 * m['test_per']:.2f}% "
        f"({m['train_seconds'] / 60:.1f} min, {m['epochs']} epochs)"
    )
    if "test_wer_no_stress" in m:
        print(
            f"test with stress ignored (CMUdict's 39 phonemes, the form published G2P results use): "
            f"WER {100 * m['test_wer_no_stress']:.2f}% PER {100 * m['test_per_no_stress']:.2f}%"
        )
    if m.get("averaged"):
        a = m["averaged"]
        wer = f", validation WER {100 * a['validation_wer']:.2f}%" if "validation_wer" in a else ""
        print(f"averaged epochs {a['epochs']}{wer}: {'kept (better than the best epoch)' if a['kept'] else 'not kept'}")
    if m.get("init_from"):
        print(f"warm start from {m['init_from']}")
    if m.get("distilled_from"):
        print(
            f"distilled from {m['distilled_from']}: trained on its greedy outputs (their WER on the training words "
            f"{100 * m['teacher_train_wer']:.2f}%; {m['teacher_empty']} empty outputs left out)"
        )
    print(json.dumps({"history": m["history"]}))
    return 0


def export(args: argparse.Namespace) -> int:
    """``elang export`` of an encoder-decoder checkpoint: a generating stage (and the router on the first)."""

    if args.runtime != "python-ort" or args.quantize or args.optimize != "none" or args.name:
        raise ValueError(
            "an encoder-decoder is exported as a python-ort generating stage; --runtime, --quantize, --optimize "
            "and --name apply to classifiers only (docs/SEQ2SEQ.md)"
        )
    meta = Path(args.checkpoint) / "seq2seq.json"
    task = json.loads(meta.read_text()).get("task") if meta.is_file() else None
    if args.data is not None:
        column = (args.text_column or ["input"])[0]
        inputs = file_splits(args.data, column, args.label_column or "target").validation.inputs
    elif task == "g2p":
        inputs = g2p_splits().validation.inputs
    else:
        inputs = [t for t, _ in sample_rows()]
    args.repository.mkdir(parents=True, exist_ok=True)
    report = export_seq2seq_stage(
        args.checkpoint,
        args.role,
        args.repository,
        inputs,
        max_new_tokens=args.max_new_tokens,
        atol=args.atol,
        serving={
            "instances": args.instances,
            "intra_op_threads": args.threads,
            "max_batch_size": args.max_batch_size,
            "max_queue_delay_us": args.max_queue_delay_us,
            "max_queue_size": args.max_queue_size,
            "queue_timeout_s": args.queue_timeout_s,
            "gpu": args.gpu,
        },
    )
    print("\n".join(report.lines()))
    return 0
