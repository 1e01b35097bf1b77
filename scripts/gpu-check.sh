#!/usr/bin/env bash
# GPU check (issue 26): on a machine with an NVIDIA GPU, install the GPU extra into .venv-gpu,
# export a pair for python-ort (CUDA provider), onnxruntime and tensorrt, build the TensorRT
# engines with the chart's prepare job, serve each and print the bench ratios (about 8 minutes).
# Without a GPU it says so, checks what a CPU can (exports, configs, the prepare job) with the
# project's .venv (scripts/setup.sh) and exits 0.
#   bash scripts/gpu-check.sh [--swift CKPT --super CKPT] [--limit N] [--work DIR] [--cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  PY=${PYTHON:-python3}
  if [ ! -x .venv-gpu/bin/python ]; then
    "$PY" -m venv .venv-gpu
    .venv-gpu/bin/pip install -q --upgrade pip
    # torch (export) comes from the index as well; the gpu extra brings onnxruntime-gpu and pytriton
    .venv-gpu/bin/pip install -q -e '.[gpu,export]'
  fi
  export PATH="$PWD/.venv-gpu/bin:$PATH"
  # trtexec: on PATH, else NVIDIA's images' location (elang.ops.prepare looks there too)
  exec timeout 900 .venv-gpu/bin/python -m elang.ops.gpucheck "$@"
fi
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python -m elang.ops.gpucheck "$@"
