#!/usr/bin/env bash
# Issue 26's "multi-exit without hops": one multi-exit checkpoint served twice in one repository,
# every segment inside the router (elang_exits, the default) and one BLS hop per segment
# (elang_bls, --segments-in stages); each calibrated at <= 0.5 pt below its last exit on the
# stages as served, then one interleaved bench: each router at its threshold and at full depth.
# Usage: nohup bash scripts/exits-inprocess.sh BASE_CHECKPOINT [PAIR_REPO] [EXITS] > log 2>&1 &
#   env: STEP (all|prepare|bench), CK (a multi-exit checkpoint already trained: skips training),
#   LIMIT (test texts per configuration, default 800; 0: all), OUT
#   BASE_CHECKPOINT: a fine-tuned encoder (e.g. the demo's MiniLM-L6 Swift), trained on the default
#   data; PAIR_REPO (optional): a pair's repository on the same data, copied in so that the
#   bench shows its Swift for scale.
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
BASE=${1:?base checkpoint}; PAIR=${2:-}; EXITS=${3:-2,4,6}
OUT=${OUT:-docs/results/exits-inprocess}
CACHE=${ELANG_CACHE:-$HOME/.cache/elang}
R=$CACHE/exits-inprocess/repo
STEP=${STEP:-all}  # all | prepare (train, export, calibrate) | bench
LIMIT=${LIMIT:-800}
mkdir -p "$OUT"
if [ "$STEP" = all ] || [ "$STEP" = prepare ]; then
  CK=${CK:-$($E train --model "$BASE" --exits "$EXITS" --epochs 1 --lr 3e-5 | tee "$OUT/train.txt" | sed -n 's/^checkpoint //p')}
  rm -rf "$R"; mkdir -p "$(dirname "$R")"
  if [ -n "$PAIR" ]; then cp -a "$PAIR" "$R"; rm -rf "$R"/elang_* "$R"/super_*; else mkdir -p "$R"; fi
  $E export-exits "$CK" --repository "$R" --name exits | tee "$OUT/export.txt"
  $E export-exits "$CK" --repository "$R" --name bls --segments-in stages | tee -a "$OUT/export.txt"
  for router in elang_exits elang_bls; do
    $E calibrate --repository "$R" --router "$router" --max-accuracy-drop 0.5 --evaluate-on test --apply \
        --out "$OUT/calibration-$router" | tee "$OUT/calibrate-$router.txt" || [ $? -eq 3 ]
  done
fi
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
  only=elang_exits,elang_exits@full,elang_bls,elang_bls@full
  [ -d "$R/swift" ] && only=swift,$only
  $E bench --repository "$R" --concurrency 8 --limit "$LIMIT" --report "$OUT/bench" --only "$only" | tee "$OUT/bench.txt"
fi
