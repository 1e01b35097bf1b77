"""Would speculative verification make a G2P Super cheaper? (issue 24, offline probe)

The Super checks the Swift's whole answer in one teacher-forced decoder pass; where its greedy
token agrees at every position the answer is the Super's own, at the cost of the encoder and one
pass instead of one decoder step per token. This prints, per batch size, ms per word of the Swift,
of the Super's greedy decoding, of the Super's encoder, of one verify pass, and the share of words
the pass accepts (each accepted answer is checked to equal the Super's greedy one).

Usage: .venv/bin/python scripts/g2p-verify-probe.py PAIR_REPO [--words 800] [--batches 1,16]
  PAIR_REPO: a repository from `elang demo --task g2p` (super/1 and elang/1/swift).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from elang.data.seq2seq import g2p_splits
from elang.runtimes.generator import OnnxSeq2SeqGenerator


def verify_pass(gen: OnnxSeq2SeqGenerator, hidden, mask, draft: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Rows whose draft (EOS included) is the Super's greedy answer, from one decoder pass."""
    width = int(lengths.max())
    dec = np.full((len(draft), width + 1), gen.pad_id, dtype=np.int64)
    dec[:, 0] = gen.start_id
    dec[:, 1:] = draft[:, :width]
    (logits,) = gen.decoder.run(
        ["logits"], {"input_ids": dec, "encoder_attention_mask": mask, "encoder_hidden_states": hidden}
    )
    pred = logits.argmax(-1)
    return np.array([np.array_equal(pred[i, : lengths[i]], draft[i, : lengths[i]]) for i in range(len(draft))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("--words", type=int, default=800)
    ap.add_argument("--batches", default="1,16")
    args = ap.parse_args()
    sup = OnnxSeq2SeqGenerator(args.repo / "super" / "1")
    sw = OnnxSeq2SeqGenerator(args.repo / "elang" / "1" / "swift")
    words = list(g2p_splits().test.texts[: args.words])
    print(f"{len(words)} test words; ms per word\n")
    print("| words per batch | Swift | Super greedy | Super encoder | one verify pass | encoder + pass | accepted |")
    print("|---|---|---|---|---|---|---|")
    for b in (int(x) for x in args.batches.split(",")):
        t = dict.fromkeys(("swift", "greedy", "encoder", "pass"), 0.0)
        accepted = 0
        for s in range(0, len(words), b):
            chunk = words[s : s + b]
            t0 = time.perf_counter()
            draft = sw(chunk)
            t1 = time.perf_counter()
            ref = sup(chunk)
            t2 = time.perf_counter()
            ids, mask = sup.encode(chunk)
            (hidden,) = sup.encoder.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
            t3 = time.perf_counter()
            ok = verify_pass(sup, hidden, mask, draft.token_ids, draft.lengths)
            t4 = time.perf_counter()
            for name, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[name] += dt
            for i in np.flatnonzero(ok):
                assert draft.texts[i] == ref.texts[i], (chunk[i], draft.texts[i], ref.texts[i])
            accepted += int(ok.sum())
        ms = {k: v * 1000 / len(words) for k, v in t.items()}
        print(
            f"| {b} | {ms['swift']:.2f} | {ms['greedy']:.2f} | {ms['encoder']:.2f} | {ms['pass']:.2f} | "
            f"{ms['encoder'] + ms['pass']:.2f} ({(ms['encoder'] + ms['pass']) / ms['greedy']:.0%} of greedy) | "
            f"{accepted / len(words):.1%} |"
        )


if __name__ == "__main__":
    main()
