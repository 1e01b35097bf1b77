"""Commands that train, export and demo: train, export, tiny-repo, demo."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from elang.cli import train_seq2seq
from elang.data import spec as dataspec
from elang.data.datasets import QUICK_SIZES_ARG
from elang.export.classify.int8_openvino import DEFAULT_INT8_MAX_DROP_PT
from elang.export.classify.stage import export_stage, stage_max_length
from elang.export.classify.tiny import sample_rows
from elang.export.classify.train import PRESETS, Recipe, train_classifier, trained_max_length
from elang.export.generate.demo import run_g2p_demo
from elang.export.generate.stage import is_encoder_decoder
from elang.export.pipeline import build_tiny_repository, default_cache, run_demo, run_tiny_demo


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a classifier (cached, resumable) and report its accuracy")
    p.add_argument("--preset", choices=("swift", "super"), default=None, help="the default pair's recipes")
    p.add_argument(
        "--model",
        default=None,
        help="minilm-l6, mpnet-base (SHA-256 checked), a local Hugging Face checkpoint folder, or a Hub id with a pinned revision: org/name@revision",
    )
    p.add_argument("--layers", type=int, default=None, help="keep only the first N encoder layers")
    p.add_argument("--freeze-layers", type=int, default=None, help="freeze embeddings and the first N layers")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text (default: the 95th percentile of the training texts, rounded up to 32, at most 256)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--patience", type=int, default=None, help="evaluations without improvement before early stopping (default 1)"
    )
    p.add_argument("--evals-per-epoch", type=int, default=None, help="validation runs per epoch (default 1)")
    p.add_argument(
        "--min-steps",
        type=int,
        default=None,
        help="train at least this many steps (small data gets more epochs) and stop early only after them (default 200)",
    )
    p.add_argument(
        "--class-weights",
        action="store_const",
        const=True,
        default=None,
        help="weight the loss by inverse label frequency (imbalanced labels)",
    )
    d = p.add_argument_group("distillation")
    d.add_argument(
        "--distill-from",
        default=None,
        metavar="CHECKPOINT",
        help="a teacher checkpoint (e.g. the trained Super): learn its soft labels on the training texts and on "
        "the texts no split uses",
    )
    d.add_argument("--distill-unlabelled", type=int, default=None, help="unlabelled texts to use (default: all)")
    d.add_argument("--distill-alpha", type=float, default=None, help="weight of the true-label loss (default 0.5)")
    m = p.add_argument_group("multi-exit (Right Tool / DeeBERT / PABEE)")
    m.add_argument(
        "--exits",
        default=None,
        metavar="LAYERS",
        help="a classifier exit after each of these layers, e.g. 2,4,6,8,10,12; all trained jointly "
        "(loss weighted by depth), with a per-exit temperature fitted on the calibration split",
    )
    m.add_argument(
        "--exit-distill",
        type=float,
        default=None,
        help="weight of distilling the top exit into the lower ones (default 0.5; 0 = off)",
    )
    m.add_argument(
        "--exit-head-lr",
        type=float,
        default=None,
        help="learning rate of the exit heads (default 5e-4, or --lr if higher)",
    )
    m.add_argument(
        "--exit-weighting",
        choices=("equal", "depth"),
        default=None,
        help="exit losses averaged (equal, Right Tool; default) or weighted by depth (PABEE)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK_SIZES_ARG} rows (train,validation,test,calibration), one epoch",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="default: $ELANG_CACHE or ~/.cache/elang")
    dataspec.add_arguments(p)
    p.set_defaults(func=cmd_train)


def recipe_from_args(args: argparse.Namespace):  # noqa: ANN201

    if args.preset is None and args.model is None:
        raise ValueError("give --preset swift|super or --model NAME_OR_FOLDER")
    recipe = PRESETS[args.preset] if args.preset else Recipe(base=args.model)
    if args.preset and args.model:
        recipe = replace(recipe, base=args.model)
    for field in (
        "layers",
        "freeze_layers",
        "epochs",
        "lr",
        "batch_size",
        "max_length",
        "seed",
        "patience",
        "evals_per_epoch",
        "min_steps",
        "class_weights",
        "distill_from",
        "distill_unlabelled",
        "distill_alpha",
        "exit_distill",
        "exit_head_lr",
        "exit_weighting",
    ):
        value = getattr(args, field)
        if value is not None:
            recipe = replace(recipe, **{field: value})
    if args.exits:
        from elang.export.exits.model import parse_exits

        recipe = replace(
            recipe, exits=parse_exits(args.exits), freeze_layers=0 if args.freeze_layers is None else args.freeze_layers
        )
    if args.quick:
        recipe = replace(recipe, epochs=1, min_steps=0)  # a first look: not extended to --min-steps
    if recipe.distill_from:
        recipe = replace(recipe, distill_from=str(Path(recipe.distill_from).resolve()))
    return recipe


def exit_table(m: dict) -> str:
    """Per-exit accuracy, temperature and FLOPs of a multi-exit training run's metrics ("" for one exit)."""
    if not m.get("exit_validation_accuracy"):
        return ""
    lines = ["exit layer | validation | test | temperature | GFLOPs/text", "---|---|---|---|---"]
    for i, layer in enumerate(m["exit_layers"]):
        lines.append(
            f"{layer} | {m['exit_validation_accuracy'][i]:.2%} | {m['exit_test_accuracy'][i]:.2%} | "
            f"{m['exit_temperatures'][i]:.3f} | {m['exit_gflops'][i]:.2f}"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:

    if args.quick and not args.sizes:
        args.sizes = QUICK_SIZES_ARG
    recipe = recipe_from_args(args)
    splits, spec = dataspec.splits_for(args)
    print(f"data: {splits.describe()}")
    result = train_classifier(recipe, splits, args.cache_dir or default_cache())
    dataspec.save(result.checkpoint, spec, splits)
    m = result.metrics
    print(f"checkpoint {result.checkpoint}")
    print(f"validation accuracy {m['validation_accuracy']:.2%}, test accuracy {m['test_accuracy']:.2%}")
    print(f"{m['steps']} steps in {m['train_seconds'] / 60:.1f} min, {m['parameters'] / 1e6:.1f}M parameters")
    table = exit_table(m)
    if table:
        print(table)
    for what, note in (m.get("notes") or {}).items():
        print(f"{what.replace('_', ' ')}: {note}")
    if m.get("distilled_from"):
        print(
            f"distilled from {m['distilled_from']} on {m['unlabelled_texts']} unlabelled texts besides the training set"
        )
    if m.get("warning"):
        print(f"WARNING: {m['warning']}", file=sys.stderr)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (with parity check) into a model repository")
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a local Hugging Face checkpoint folder: a text classifier, or an encoder-decoder (T5 and kin), "
        "which becomes a generating stage (docs/SEQ2SEQ.md)",
    )
    p.add_argument("--as", dest="role", required=True, choices=("swift", "super"))
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument(
        "--runtime",
        choices=("python-ort", "onnxruntime", "tensorrt", "openvino", "python-ensemble"),
        default="python-ort",
        help="python-ort runs here; onnxruntime/tensorrt/openvino write configs for the NGC container's backends",
    )
    p.add_argument(
        "--quantize",
        choices=("int8", "int8-static"),
        default=None,
        help="int8: dynamic (weights int8, activation ranges at run time); int8-static: QDQ with "
        "activation ranges calibrated on the calibration split's texts (validation's without one)",
    )
    p.add_argument("--quantize-exclude", choices=("ffn-output", "none"), default="ffn-output",
                   help="ffn-output (default): keep the FFN output MatMuls in fp32; none: quantize every MatMul")  # fmt: skip
    p.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"), default="minmax",
                   help="int8-static: how activation ranges are read from the calibration texts (default minmax)")  # fmt: skip
    p.add_argument("--optimize", choices=("none", "basic", "extended", "all"), default="none")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text, longer texts are truncated (default: what the checkpoint was trained with, else 128)",
    )
    p.add_argument("--gpu", action="store_true", help="GPU instances / CUDA provider in the configs")
    p.add_argument("--atol", type=float, default=1e-4, help="max |ONNX - PyTorch| logit difference accepted")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="encoder-decoders: the cap on generated tokens per row (default: the training's, else 40)",
    )
    p.add_argument(
        "--name", default=None, help="model name for a variant super (e.g. super_int8); adds router elang_NAME"
    )
    s = p.add_argument_group("serving (config.pbtxt of the stage)")
    s.add_argument("--instances", type=int, default=1, help="model instances")
    s.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per instance (0: all cores)")
    s.add_argument("--max-batch-size", type=int, default=64)
    s.add_argument("--max-queue-delay-us", type=int, default=500, help="dynamic batching delay")
    s.add_argument("--length-bucket", type=int, default=0, help="rows per length-sorted sub-batch (0: off)")
    s.add_argument("--engine", choices=("onnxruntime", "openvino"), default="onnxruntime",
                   help="python-ort: what runs model.onnx (openvino: Intel's, fp32, bf16 or int8)")  # fmt: skip
    s.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="engine openvino (or runtime openvino): bf16 runs on AMX/AVX512-BF16 where the CPU has "
                   "them, fp32 elsewhere; int8 is quantized here by NNCF on the calibration split's texts and runs "
                   "on AMX-INT8/VNNI")  # fmt: skip
    s.add_argument("--streams", type=int, default=1,
                   help="engine or runtime openvino: CPU streams sharing the threads; > 1 runs each batch's rows as "
                   "that many parts at once (default 1: one latency stream on every thread; docs/BENCHMARKS.md 10.5)")  # fmt: skip
    s.add_argument("--int8-max-drop", type=float, default=DEFAULT_INT8_MAX_DROP_PT, metavar="PT",
                   help="precision int8: operations return to fp32 until the int8 stage gives fp32's answer on all but "
                   "PT percent of the validation texts (NNCF's accuracy control on agreement; a changed answer costs at "
                   f"most one right one; default {DEFAULT_INT8_MAX_DROP_PT}; a negative value turns it off)")  # fmt: skip
    s.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let idle ONNX Runtime threads busy-wait (off: stages sharing cores slow each other down)",
    )
    s.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help="requests allowed to wait for the stage; more are refused at once (default: no limit). The "
        "router bounds what it sends; set one when clients call the stage directly (in Triton 2.51 any "
        "queue policy costs stalls of up to 500 ms: docs/OPERATIONS.md)",
    )
    s.add_argument(
        "--queue-timeout-s", type=float, default=0.0, help="a request waiting longer is refused (default 0: never)"
    )
    dataspec.add_arguments(p, remembered=True)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:

    if is_encoder_decoder(args.checkpoint):
        return train_seq2seq.export(args)

    args.repository.mkdir(parents=True, exist_ok=True)
    dataspec.adopt(args.checkpoint, args.repository, args.allow_other_data)

    args.max_length = stage_max_length(args.checkpoint, args.max_length, trained_max_length(args.checkpoint))
    quantizing = args.quantize is not None or args.precision == "int8"
    splits, _ = dataspec.splits_for(args, args.repository, required=quantizing)
    report = export_stage(
        args.checkpoint,
        args.role,
        args.repository,
        splits=splits,
        sample_texts=[t for t, _ in sample_rows()],
        runtime=args.runtime,
        quantize=args.quantize,
        quantize_exclude=args.quantize_exclude,
        calibration_method=args.calibration_method,
        optimize=args.optimize,
        max_length=args.max_length,
        gpu=args.gpu,
        atol=args.atol,
        name=args.name,
        int8_max_drop_pt=None if args.int8_max_drop < 0 else args.int8_max_drop,
        serving={
            "instances": args.instances,
            "intra_op_threads": args.threads,
            "max_batch_size": args.max_batch_size,
            "max_queue_delay_us": args.max_queue_delay_us,
            "length_bucket": args.length_bucket,
            "ort_spinning": args.ort_spinning,
            "engine": args.engine,
            "precision": args.precision,
            "streams": args.streams,
            "max_queue_size": args.max_queue_size,
            "queue_timeout_s": args.queue_timeout_s,
        },
    )
    print("\n".join(report.lines()))
    for warning in report.warnings():
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def _add_tiny(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-repo", help="build a repository from tiny random BERT models (tests, first look)")
    p.add_argument("--repository", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, default=None, help="where checkpoints and ONNX go (default: next to it)")
    p.add_argument("--super-fraction", type=float, default=0.3, help="share of the sample texts sent to super")
    p.add_argument("--runtime", choices=("python-ort", "onnxruntime", "python-ensemble"), default="python-ort")
    p.set_defaults(func=cmd_tiny)


def cmd_tiny(args: argparse.Namespace) -> int:

    info = build_tiny_repository(args.repository, args.work_dir, args.super_fraction, args.runtime)
    print(json.dumps(info, indent=2))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train (cached) and export the default pair, serve it, compare Swift, Super and E-LANG"
    )
    p.add_argument("--work-dir", type=Path, default=None, help="default: $ELANG_CACHE/demo")
    p.add_argument("--cache-dir", type=Path, default=None, help="training cache (default: $ELANG_CACHE)")
    p.add_argument("--quick", action="store_true", help="a first look: small splits, one epoch each")
    p.add_argument("--limit", type=int, default=None, help="send only the first N test texts")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--tiny", action="store_true", help="tiny random models and the embedded sample (seconds)")
    p.add_argument(
        "--plain-swift",
        action="store_true",
        help="train the Swift on the labels only (default: distilled from the trained Super, the headline's pair)",
    )
    p.add_argument(
        "--task",
        choices=("classify", "g2p"),
        default="classify",
        help="g2p: the seq2seq pair (T5s on CMUdict grapheme-to-phoneme, docs/SEQ2SEQ.md)",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:

    if args.task == "g2p":
        if args.tiny:
            raise ValueError("--tiny is the classifier demo; the g2p demo has --quick")
        if args.plain_swift:
            raise ValueError("--plain-swift is the classifier demo's; the g2p demo serves the shipped pair")
        cache = args.cache_dir or default_cache()
        work = args.work_dir or cache / "demo"
        return run_g2p_demo(cache, work, args.quick, args.limit, args.concurrency)
    if args.tiny:
        return run_tiny_demo(args.work_dir)
    return run_demo(
        work_dir=args.work_dir,
        cache_dir=args.cache_dir,
        quick=args.quick,
        limit=args.limit,
        concurrency=args.concurrency,
        distill=not args.plain_swift,
    )
