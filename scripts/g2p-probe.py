"""Probe a T5 G2P configuration for a few hundred steps before paying for a full run: does it
leave the bag-of-phonemes plateau? (docs/BENCHMARKS.md section 8.1.)

    .venv/bin/python scripts/g2p-probe.py --encoder-layers 4 --decoder-layers 2 --lr 1.5e-3 [--d-model 256 --d-ff 1024]

Trains as `elang train-seq2seq` does (length batches, warm-up then linear decay planned over
--epochs) and prints validation WER/PER on 300 words every --every steps.
"""

import argparse
import time

import numpy as np
import torch
from transformers import T5ForConditionalGeneration

from elang.export.seq2seq_train import Seq2SeqRecipe, _batch, _config, _pairs, build_tokenizers, generate_texts
from elang.seq2seq_data import error_rates, g2p_splits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--encoder-layers", type=int, required=True)
    p.add_argument("--decoder-layers", type=int, required=True)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=3, help="the schedule is planned over this many epochs")
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--every", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = Seq2SeqRecipe(
        "probe", d_model=args.d_model, d_ff=args.d_ff, num_heads=args.heads, encoder_layers=args.encoder_layers,
        decoder_layers=args.decoder_layers, epochs=args.epochs, lr=args.lr, batching="length",
    )  # fmt: skip
    sp = g2p_splits()
    src, tgt, vocab = build_tokenizers(sp)
    items = _pairs(sp.train, src, tgt, r)
    torch.manual_seed(r.seed)
    model = T5ForConditionalGeneration(_config(r, vocab))
    print("parameters", sum(q.numel() for q in model.parameters()), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=0.01)
    total = (len(items) + r.batch_size - 1) // r.batch_size * r.epochs
    warm = max(1, int(r.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=r.label_smoothing)
    rng = np.random.default_rng(r.seed)
    order = sorted(rng.permutation(len(items)), key=lambda i: len(items[i][0]) // 3)
    batches = [order[i : i + r.batch_size] for i in range(0, len(order), r.batch_size)]
    t0 = time.time()
    for step, b in enumerate(rng.permutation(len(batches))[: args.steps], 1):
        model.train()
        ids, mask, labels = _batch([items[i] for i in batches[b]])
        logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % args.every == 0:
            model.eval()
            preds = generate_texts(model, src, tgt, sp.validation.inputs[:300], 40)
            rates = error_rates(preds, sp.validation.references[:300]).describe()
            print(f"step {step} loss {loss.item():.3f} {rates} {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
