#!/usr/bin/env bash
# How the stages of a served pair should share this CPU's cores (docs/BENCHMARKS.md 10.5): the
# Swift alone, the Super alone and E-LANG over them, through the real server, under each layout:
#   default  one instance of each stage and router, every stage on every core (OpenVINO pinned);
#   streams  the same, each OpenVINO stage on 2 streams (a batch's rows as 2 parts at once);
#   2x1      2 instances of each stage and router, 1 thread each (not pinned);
#   default  again, for the drift between runs.
# The router's threshold is set once to send FRACTION of the texts up (calibrate --super-fraction),
# so every layout routes the same texts; the speed-up to read is E-LANG's best layout against the
# Super alone's best layout.
# Usage: bash scripts/layout-probe.sh REPOSITORY [SUPER (super_int8ov)] [FRACTION (0.06)] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
R=${1:?repository with swift and SUPER}; SUPER=${2:-super_int8ov}; FRACTION=${3:-0.06}
OUT=${4:-docs/results/layouts}
ROUTER=elang_$SUPER; [ "$SUPER" = super ] && ROUTER=elang
LIMIT=${LIMIT:-800}
mkdir -p "$OUT"
$E calibrate --repository "$R" --super "$SUPER" --super-fraction "$FRACTION" --apply --out "$OUT/calibration" \
    | tee "$OUT/calibrate.txt"
layout() {
  case $1 in
    default) $E tune "$R" --threads 0 --instances 1 --router-instances 1 --streams 1 ;;
    streams) $E tune "$R" --threads 0 --instances 1 --router-instances 1 --streams 2 ;;
    2x1) $E tune "$R" --threads 1 --instances 2 --router-instances 2 --streams 1 ;;
  esac
}
n=0
for name in default streams 2x1 default; do
  n=$((n + 1))
  layout "$name" > /dev/null
  echo "== layout $name (run $n)" | tee -a "$OUT/summary.txt"
  $E bench --repository "$R" --concurrency "${CONCURRENCY:-8}" --limit "$LIMIT" --only "swift,$SUPER,$ROUTER" \
      --report "$OUT/bench-$n-$name" > "$OUT/bench-$n-$name.txt"
  grep -E "^\| [0-9]+ \| (swift|$SUPER|$ROUTER) \|" "$OUT/bench-$n-$name.txt" | tee -a "$OUT/summary.txt"
done
layout default > /dev/null
