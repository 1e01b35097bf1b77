"""Time T5 training steps of the G2P Super's shape in fp32 and under bfloat16 autocast (AMX).

    .venv/bin/python scripts/bf16-probe.py [--preset super] [--batch-sizes 128,256] [--steps 8]

Prints ms per step and per pair (median of the steps after two warm-up ones) for each batch size,
fp32 then bf16, on CMUdict's training pairs in the order the recipe batches them.
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
    new_model,
    new_optimizer,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="super", choices=sorted(PRESETS))
    p.add_argument("--batch-sizes", default="128,256")
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    splits = g2p_splits()
    src, tgt, vocab = build_tokenizers(splits)
    base = PRESETS[args.preset]
    items = _pairs(splits.train, src, tgt, base)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=base.label_smoothing)
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        for bf16 in (False, True):
            recipe = replace(base, batch_size=bs)
            model = new_model(recipe, vocab)
            opt, _ = new_optimizer(model, recipe, 1000)
            times = []
            for batch in epoch_batches(items, recipe, 0)[: args.steps]:
                t0 = time.perf_counter()
                ids, mask, labels = _batch([items[i] for i in batch])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
                loss_fn(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1)).backward()
                opt.step()
                opt.zero_grad()
                times.append(time.perf_counter() - t0)
            med = sorted(times[2:])[len(times[2:]) // 2]
            print(f"batch {bs} {'bf16' if bf16 else 'fp32'}: {1000 * med:.0f} ms/step, {1000 * med / bs:.2f} ms/pair")


if __name__ == "__main__":
    main()
