#!/usr/bin/env bash
# Issue 26's headline on the current code: E-LANG (the distilled Swift on OpenVINO bf16 -> the
# OpenVINO int8 Super) against the fastest static Super-only, through the real server.
#   1. exports (skipped where the stage is already in the repository: REBUILD=1 redoes them):
#      swift (OpenVINO bf16), super (ONNX Runtime fp32), super_bf16 (OpenVINO bf16),
#      super_int8ov (OpenVINO int8 by NNCF, the rest in bf16);
#   2. calibration of elang_super_int8ov on the stages as served: at most 0.5 pt below its
#      Super, certified (p 0.9), criterion auto, applied, evaluated on test;
#   3. elang bench at concurrency 8 over the whole test split (4000 texts), interleaved;
#   4. elang bench at concurrency 1, 8, 32 over 800 test texts, interleaved.
# Usage: nohup bash scripts/headline.sh SWIFT_CKPT SUPER_CKPT > log 2>&1 &
#   env: REPO (default ~/.cache/elang/headline/repo), OUT (docs/results/headline), STEP (all|export|calibrate|bench)
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
SW=${1:?Swift checkpoint}; SU=${2:?Super checkpoint}
CACHE=${ELANG_CACHE:-$HOME/.cache/elang}
R=${REPO:-$CACHE/headline/repo}
OUT=${OUT:-docs/results/headline}
STEP=${STEP:-all}
mkdir -p "$OUT"
export_once() {  # NAME ARGS...: export unless REPO/NAME is there
  local name=$1; shift
  if [ -d "$R/$name" ] && [ -z "${REBUILD:-}" ]; then echo "kept $R/$name"; return; fi
  $E export "$@" --repository "$R"
}
if [ "$STEP" = all ] || [ "$STEP" = export ]; then
  {
    export_once swift "$SW" --as swift --engine openvino --precision bf16
    export_once super "$SU" --as super
    export_once super_int8ov "$SU" --as super --name super_int8ov --engine openvino --precision int8
    export_once super_bf16 "$SU" --as super --name super_bf16 --engine openvino --precision bf16
    $E tune "$R" --inline on  # the Swift inside every router, however the exports were ordered
  } | tee "$OUT/export.txt"
fi
if [ "$STEP" = all ] || [ "$STEP" = calibrate ]; then
  $E calibrate --repository "$R" --super super_int8ov --max-accuracy-drop 0.5 --criterion auto --evaluate-on test \
      --apply --out "$OUT/calibration-super_int8ov" | tee "$OUT/calibrate-super_int8ov.txt" || [ $? -eq 3 ]
fi
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
  only=swift,super,super_bf16,super_int8ov,elang_super_int8ov
  $E bench --repository "$R" --concurrency 8 --limit 4000 --report "$OUT/bench-4000" --only "$only" \
      | tee "$OUT/bench-4000.txt"
  $E bench --repository "$R" --concurrency 1,8,32 --limit 800 --report "$OUT/bench-800" \
      --only swift,super_int8ov,elang_super_int8ov | tee "$OUT/bench-800.txt"
fi
