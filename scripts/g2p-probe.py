"""Probe a T5 G2P configuration for a few hundred steps before paying for a full run: does it
leave the bag-of-phonemes plateau, and how fast? (docs/BENCHMARKS.md section 8.1.)

    .venv/bin/python scripts/g2p-probe.py --encoder-layers 3 --decoder-layers 3 [--d-model 256 --d-ff 1024]
    .venv/bin/python scripts/g2p-probe.py --encoder-layers 3 --decoder-layers 3 --unscaled   # T5's own init/steps

Trains with `elang train-seq2seq`'s own model, optimiser, schedule (planned over --epochs) and
batches, and prints the loss every 50 steps and validation WER/PER on 300 words every --every steps.
"""

import argparse
import math
import time

import torch

from elang.data.seq2seq import error_rates, g2p_splits
from elang.export.generate.train import (
    Seq2SeqRecipe,
    _pairs,
    build_tokenizers,
    epoch_batches,
    generate_texts,
    new_model,
    new_optimizer,
    train_step,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--encoder-layers", type=int, required=True)
    p.add_argument("--decoder-layers", type=int, required=True)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batching", choices=("length", "random"), default="length")
    p.add_argument("--schedule", choices=("linear", "constant"), default="linear")
    p.add_argument("--unscaled", action="store_true", help="T5's own query steps and output-head init")
    p.add_argument("--epochs", type=int, default=3, help="the schedule is planned over this many epochs")
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = Seq2SeqRecipe(
        "probe", d_model=args.d_model, d_ff=args.d_ff, num_heads=args.heads, encoder_layers=args.encoder_layers,
        decoder_layers=args.decoder_layers, epochs=args.epochs, lr=args.lr, dropout=args.dropout,
        batch_size=args.batch_size, batching=args.batching, schedule=args.schedule, scaled_attention=not args.unscaled,
    )  # fmt: skip
    sp = g2p_splits()
    src, tgt, vocab = build_tokenizers(sp, r.lowercase)
    items = _pairs(sp.train, src, tgt, r)
    model = new_model(r, vocab)
    print("parameters", sum(q.numel() for q in model.parameters()), flush=True)
    opt, sched = new_optimizer(model, r, math.ceil(len(items) / r.batch_size) * r.epochs)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=r.label_smoothing)
    t0, step = time.time(), 0
    for epoch in range(r.epochs):
        for batch in epoch_batches(items, r, epoch):
            step += 1
            loss = train_step(model, opt, sched, loss_fn, [items[i] for i in batch])
            if step % 50 == 0:
                print(f"step {step} loss {loss:.3f} {time.time() - t0:.0f}s", flush=True)
            if step % args.every == 0:
                model.eval()
                preds = generate_texts(model, src, tgt, sp.validation.inputs[:300], 40)
                rates = error_rates(preds, sp.validation.references[:300]).describe()
                print(f"step {step} {rates} {time.time() - t0:.0f}s", flush=True)
            if step >= args.steps:
                return


if __name__ == "__main__":
    main()
