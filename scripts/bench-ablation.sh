#!/usr/bin/env bash
# What each serving change bought (docs/BENCHMARKS.md, "What each change bought"): the same
# repository in six settings, each adding one change to the one before (step 6: step 4
# without the dynamic-batching delay), each measured by its own `elang bench` run (Swift, Super,
# E-LANG and the no-escalation router interleaved inside the run, so ratios are within-run).
# Usage: scripts/bench-ablation.sh [REPO] [LIMIT]   (about 15 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
REPO=${1:-${ELANG_CACHE:-$HOME/.cache/elang}/demo/model_repository}
LIMIT=${2:-400}
OUT=docs/results/ablation
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$REPO" "$WORK/repo"
# Only the main pair: the int8 variants are not part of this comparison.
rm -rf "$WORK/repo/super_int8" "$WORK/repo/elang_super_int8"

run() {  # NAME, then elang tune options
    local name=$1
    shift
    $E tune "$WORK/repo" "$@"
    $E bench --repository "$WORK/repo" --concurrency 1,8 --limit "$LIMIT" --chunks 4 \
        --only swift,super,elang,elang@no-escalation --report "$OUT/$name"
}
rm -rf "$OUT"
run 1-before --ort-spinning on --inline off --router-instances 1 --metrics-interval-s 0
run 2-no-spinning --ort-spinning off
run 3-inline-swift --inline on
run 4-metrics-gathered --metrics-interval-s 0.5
run 5-two-routers --router-instances 2
run 6-no-batching-delay --router-instances 1 --max-queue-delay-us 0  # compare with step 4
