#!/usr/bin/env bash
# Issue 24's G2P pair, step by step; every step is cached or resumes, so run it again after a stop:
#   1. the Super (preset: bf16, 20 epochs; ~2 h on 2 idle cores, state saved every 4 min);
#   2. a Swift distilled from it (sequence-level: trained on the Super's greedy outputs);
#   3. the plain and the distilled Swift each exported with the Super and calibrated (WER +0.5 pt,
#      certified; the routing curves); the distilled pair measured through the server at 16 and 1
#      words per request.
# Logs and results under docs/results/g2p-pair/ (env OUT). Usage: nohup bash scripts/g2p-pair.sh > g2p.log 2>&1 &
#   env SUPER_ARGS: more options of the Super's train-seq2seq, e.g. the warm restart of BENCHMARKS 8.6:
#   SUPER_ARGS="--init-from SUPER_CHECKPOINT --epochs 6 --lr 1e-3 --warmup 0.02 --average-last 3"
#   env SUPER and DIST (checkpoints, e.g. weights/g2p/super and weights/g2p/swift): no training, the
#   distilled pair only (steps 3 and 4 on that pair). CRITERION: calibrate's (default auto).
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
OUT=${OUT:-docs/results/g2p-pair}
CACHE=${ELANG_CACHE:-$HOME/.cache/elang}
mkdir -p "$OUT"
PAIRS="plain distilled"
if [ -n "${SUPER:-}" ] && [ -n "${DIST:-}" ]; then
  PAIRS=distilled
else
  # shellcheck disable=SC2086  # SUPER_ARGS is a list of options
  SUPER=$($E train-seq2seq --preset super --save-every-s 240 ${SUPER_ARGS:-} | tee "$OUT/train-super.txt" | sed -n 's/^checkpoint //p')
  PLAIN=$($E train-seq2seq --preset swift | tee "$OUT/train-swift.txt" | sed -n 's/^checkpoint //p')
  DIST=$($E train-seq2seq --preset swift --distill-from "$SUPER" | tee "$OUT/train-swift-distilled.txt" | sed -n 's/^checkpoint //p')
fi
for name in $PAIRS; do
  swift=${PLAIN:-}; [ "$name" = distilled ] && swift=$DIST
  R=$CACHE/g2p-pair-$name
  rm -rf "$R"
  $E export "$swift" --as swift --repository "$R" | tee "$OUT/export-$name.txt"
  $E export "$SUPER" --as super --repository "$R" | tee -a "$OUT/export-$name.txt"
  $E calibrate --repository "$R" --max-accuracy-drop 0.5 --criterion "${CRITERION:-auto}" --evaluate-on test --apply \
      --out "$OUT/calibration-$name" | tee "$OUT/calibrate-$name.txt" || [ $? -eq 3 ]
done
# Through the server: the pair whose routing curve pays (the distilled Swift's; the plain one's
# curve is in calibrate-plain.txt), at 16 words per request and at one.
R=$CACHE/g2p-pair-distilled
for words in 16 1; do
  $E bench --repository "$R" --concurrency 8 --limit 0 --batch-size "$words" \
      --report "$OUT/bench-distilled-$words" | tee "$OUT/bench-distilled-$words.txt"
done
