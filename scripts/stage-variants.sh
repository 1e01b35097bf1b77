#!/usr/bin/env bash
# Issue 26 on the default pair (the checkpoints `elang demo` trained): every static variant of
# the stages, offline and through the server, and E-LANG over them at the certified threshold.
#   1. exports: the pair (the Swift as SWIFT_ENGINE says); the Super as OpenVINO bf16
#      (super_bf16), dynamic int8 (super_int8) and OpenVINO int8 by NNCF (super_int8ov); the ONNX
#      Runtime fp32 Swift in a second
#      repository (offline table only);
#   2. the runtime table (ms/text at batch 1 and 32, test accuracy, agreement) per stage;
#   3. calibration of each router (elang: fp32 pair; elang_super_bf16, _int8, _int8ov) on the
#      stages as served, at most 0.5 pt below its Super, certified, applied;
#   4. elang bench at concurrency 1, 8, 32 over 800 test texts, interleaved, one run.
# Usage: nohup bash scripts/stage-variants.sh SWIFT_CKPT SUPER_CKPT [SWIFT_ENGINE] > log 2>&1 &
#   SWIFT_ENGINE: openvino-bf16 (default: it won the table on this CPU) or onnxruntime.
set -euo pipefail
cd "$(dirname "$0")/.."
E=.venv/bin/elang
SW=${1:?Swift checkpoint}; SU=${2:?Super checkpoint}; SWIFT_ENGINE=${3:-openvino-bf16}
OUT=${OUT:-docs/results/variants-default}
CACHE=${ELANG_CACHE:-$HOME/.cache/elang}
R=$CACHE/variants/repo; RS=$CACHE/variants/swift-fp32
mkdir -p "$OUT"
STEP=${STEP:-all}
swift_flags=()
[ "$SWIFT_ENGINE" = openvino-bf16 ] && swift_flags=(--engine openvino --precision bf16)
if [ "$STEP" = all ] || [ "$STEP" = export ]; then
  rm -rf "$R" "$RS"
  $E export "$SW" --as swift --repository "$R" "${swift_flags[@]}" | tee "$OUT/export.txt"
  $E export "$SU" --as super --repository "$R" | tee -a "$OUT/export.txt"
  $E export "$SU" --as super --name super_bf16 --engine openvino --precision bf16 --repository "$R" | tee -a "$OUT/export.txt"
  $E export "$SU" --as super --name super_int8 --quantize int8 --repository "$R" | tee -a "$OUT/export.txt"
  $E export "$SU" --as super --name super_int8ov --engine openvino --precision int8 --repository "$R" | tee -a "$OUT/export.txt"
  $E export "$SW" --as swift --repository "$RS" | tee -a "$OUT/export.txt"
  .venv/bin/python scripts/runtime-table.py "$R" super super_bf16 super_int8 super_int8ov --limit 800 | tee "$OUT/runtimes-super.md"
  .venv/bin/python scripts/runtime-table.py "$R" swift --limit 800 | tee "$OUT/runtimes-swift.md"
  .venv/bin/python scripts/runtime-table.py "$RS" swift --limit 800 | tee "$OUT/runtimes-swift-fp32.md"
fi
if [ "$STEP" = all ] || [ "$STEP" = calibrate ]; then
  for super in super super_bf16 super_int8 super_int8ov; do
    $E calibrate --repository "$R" --super "$super" --max-accuracy-drop 0.5 --criterion auto --evaluate-on test \
        --apply --out "$OUT/calibration-$super" | tee "$OUT/calibrate-$super.txt" || [ $? -eq 3 ]
  done
fi
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
  $E bench --repository "$R" --concurrency 1,8,32 --limit 800 --report "$OUT/bench" | tee "$OUT/bench.txt"
fi
