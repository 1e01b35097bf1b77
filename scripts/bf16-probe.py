"""Time T5 training steps of a G2P preset's shape under each speed lever of issue 24's recipe.

    .venv/bin/python scripts/bf16-probe.py [--preset super] [--batch-sizes 128,256,512]
        [--batching length,random] [--compile] [--steps 8] [--validation]

For each batch size, batching (length: batches of similar input lengths, less padding; random),
precision (fp32, bf16 autocast) and, with --compile, torch.compile on and off, prints ms per step
and per training pair (median of the steps after two warm-up ones) and the share of padded
target positions, on CMUdict's training pairs in the order the recipe batches them. With
--validation, also the time one epoch's validation decoding takes (greedy, the recipe's 1000
words). The speed per pair is what an epoch costs; whether a lever keeps the accuracy an epoch
buys is a training run's question (docs/BENCHMARKS.md 8.8).
"""

import argparse
import time
from dataclasses import replace

import torch

from elang.data.seq2seq import g2p_splits
from elang.export.generate.train import (
    PRESETS,
    _batch,
    _pairs,
    build_tokenizers,
    epoch_batches,
    generate_texts,
    new_model,
    new_optimizer,
)


def time_steps(recipe, vocab, items, steps: int, bf16: bool, compiled: bool) -> tuple[float, float]:  # noqa: ANN001
    """(median seconds per step, share of padded target positions) of ``steps`` training steps."""
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=recipe.label_smoothing)
    model = new_model(recipe, vocab)
    opt, _ = new_optimizer(model, recipe, 1000)
    forward = torch.compile(model, dynamic=True) if compiled else model
    times, pad, total = [], 0, 0
    for batch in epoch_batches(items, recipe, 0)[: steps + 2]:
        t0 = time.perf_counter()
        ids, mask, labels = _batch([items[i] for i in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(input_ids=ids, attention_mask=mask, labels=labels).logits
        loss_fn(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1)).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
        pad, total = pad + int((labels == -100).sum()), total + labels.numel()
    rest = sorted(times[2:])
    return rest[len(rest) // 2], pad / max(1, total)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="super", choices=sorted(PRESETS))
    p.add_argument("--batch-sizes", default="128,256")
    p.add_argument("--batching", default="length", help="comma-separated: length, random")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (its compile time is left out)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--validation", action="store_true", help="time one epoch's validation decoding too")
    args = p.parse_args()
    splits = g2p_splits()
    src, tgt, vocab = build_tokenizers(splits)
    base = PRESETS[args.preset]
    items = _pairs(splits.train, src, tgt, base)
    print(f"preset {args.preset}: {len(items)} training pairs, {torch.get_num_threads()} threads")
    print("| batch | batching | precision | torch.compile | ms/step | ms/pair | padded targets |")
    print("|---|---|---|---|---|---|---|")
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        for batching in args.batching.split(","):
            for bf16 in (False, True):
                for compiled in (False, True) if args.compile else (False,):
                    recipe = replace(base, batch_size=bs, batching=batching)
                    step, pad = time_steps(recipe, vocab, items, args.steps, bf16, compiled)
                    print(
                        f"| {bs} | {batching} | {'bf16' if bf16 else 'fp32'} | {'on' if compiled else 'off'} | "
                        f"{1000 * step:.0f} | {1000 * step / bs:.2f} | {100 * pad:.1f}% |",
                        flush=True,
                    )
    if args.validation:
        model = new_model(base, vocab)
        words = splits.validation.inputs[: base.validation_words]
        t0 = time.perf_counter()
        generate_texts(model, src, tgt, words, base.max_target_tokens)
        print(f"validation decoding of {len(words)} words (greedy, untrained model: every row runs to the cap): "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
