#!/usr/bin/env bash
# Issue 26's faster Swift: the plain and the distilled 6-layer Swift, each as served on this CPU
# (OpenVINO bf16 and OpenVINO int8), ranked by `elang pairs` against the fastest accurate Super
# of the variants repository (scripts/stage-variants.sh), at the product's target; then the
# chosen Swift goes into that repository, every router is calibrated on the stages as served,
# and one interleaved bench measures E-LANG against the fastest static Super-only.
# Usage: nohup bash scripts/swift-candidates.sh PLAIN_SWIFT_CKPT DISTILLED_SWIFT_CKPT > log 2>&1 &
#   env: SUPER (default super_bf16), OUT (docs/results/swift-candidates), STEP (all|export|pairs|serve),
#   SUPERS (the Supers whose routers are calibrated and benched: super super_bf16 super_int8ov),
#   CHOSEN (serve this candidate instead of the one pairs recommends, e.g. distilled-bf16),
#   CONCURRENCY (the bench's, default 1,8,32)
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
PLAIN=${1:?plain Swift checkpoint}; DISTILLED=${2:?distilled Swift checkpoint}
SUPER=${SUPER:-super_bf16}
SUPERS=${SUPERS:-super super_bf16 super_int8ov}
OUT=${OUT:-docs/results/swift-candidates}
CACHE=${ELANG_CACHE:-$HOME/.cache/elang}
R=$CACHE/variants/repo; C=$CACHE/variants/candidates
STEP=${STEP:-all}
mkdir -p "$OUT"
[ -d "$R/$SUPER" ] || { echo "no $SUPER in $R: run scripts/stage-variants.sh first" >&2; exit 2; }
if [ "$STEP" = all ] || [ "$STEP" = export ]; then
  : > "$OUT/export.txt"
  for name in plain distilled; do
    ck=$PLAIN; [ "$name" = distilled ] && ck=$DISTILLED
    for prec in bf16 int8; do
      rm -rf "$C/$name-$prec"
      $E export "$ck" --as swift --repository "$C/$name-$prec" --engine openvino --precision "$prec" | tee -a "$OUT/export.txt"
    done
  done
fi
if [ "$STEP" = all ] || [ "$STEP" = pairs ]; then
  $E pairs --repository "$R" --super "$SUPER" --max-accuracy-drop 0.5 --criterion auto --out "$OUT/pairs" \
      --candidate plain-bf16="$C/plain-bf16" --candidate plain-int8="$C/plain-int8" \
      --candidate distilled-bf16="$C/distilled-bf16" --candidate distilled-int8="$C/distilled-int8" \
      | tee "$OUT/pairs.txt"
fi
if [ "$STEP" = all ] || [ "$STEP" = serve ]; then
  best=${CHOSEN:-$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best'])" "$OUT/pairs/pairs.json")}
  name=${best%-*}; prec=${best##*-}
  ck=$PLAIN; [ "$name" = distilled ] && ck=$DISTILLED
  echo "the chosen Swift: $best ($ck)" | tee "$OUT/chosen.txt"
  $E export "$ck" --as swift --repository "$R" --engine openvino --precision "$prec" | tee -a "$OUT/chosen.txt"
  for super in $SUPERS; do
    $E calibrate --repository "$R" --super "$super" --max-accuracy-drop 0.5 --criterion auto --evaluate-on test \
        --apply --out "$OUT/calibration-$super" | tee "$OUT/calibrate-$super.txt" || [ $? -eq 3 ]
  done
  only=swift
  for super in $SUPERS; do
    router=elang_$super; [ "$super" = super ] && router=elang
    only="$only,$super,$router"
  done
  $E bench --repository "$R" --concurrency "${CONCURRENCY:-1,8,32}" --limit 800 --report "$OUT/bench" --only "$only" | tee "$OUT/bench.txt"
fi
