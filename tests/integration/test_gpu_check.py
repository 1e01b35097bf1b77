"""The GPU check's CPU mode (scripts/gpu-check.sh): without a GPU it says so, checks what a CPU
can (the GPU runtimes' exports, their configs, the prepare job) and exits 0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_its_cpu_checks_and_says_what_it_did_not_run(tmp_path):
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--cpu", "--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checking what a CPU can check" in out.stdout
    for runtime in ("python-ort", "onnxruntime", "tensorrt"):
        assert f"ok: exported swift and super for {runtime} --gpu" in out.stdout
        assert f"ok: {runtime}: every config parses" in out.stdout
    assert "ok: prepare copied the TensorRT repository (2 engine scripts" in out.stdout
    assert "not run here: the CUDA provider, TensorRT engine builds" in out.stdout
    assert "8 checks passed" in out.stdout
    assert (tmp_path / "work" / "prepared-tensorrt" / "swift_onnx" / "1" / "build_engine.sh").is_file()
