"""The GPU check (``scripts/gpu-check.sh``): export a pair for every GPU runtime, build the
TensorRT engines with the chart's prepare job, serve each repository and print the bench ratios.

On a machine without an NVIDIA GPU it says so, checks what a CPU can check (the three GPU
repositories export and their configs parse, with GPU instances and the CUDA provider first;
the prepare job copies the TensorRT repository and its engine scripts hold the trtexec line)
and exits 0. (IO binding is the generating stages' own default on CUDA: ``elang.runtimes.generator``.)

Pair: ``--swift``/``--super`` trained checkpoints; without them, on a GPU, the named pretrained
bodies (MiniLM-L6, MPNet-base) with seeded, untrained heads (the speed is real, the accuracy is
not meaningful and is labelled so); on a CPU, tiny BERTs made from a config.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from elang import contract as c

RUNTIMES = ("python-ort", "onnxruntime", "tensorrt")


@dataclass
class CheckLog:
    """What was checked (``ok``), and what could not be (``skipped``), in order."""

    ok: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def passed(self, what: str) -> None:
        self.ok.append(what)
        print(f"[{time.monotonic() - self.t0:6.1f} s] ok: {what}", flush=True)

    def skip(self, what: str) -> None:
        self.skipped.append(what)
        print(f"[{time.monotonic() - self.t0:6.1f} s] not run here: {what}", flush=True)


def gpu_names() -> list[str]:
    """The NVIDIA cards ``nvidia-smi -L`` lists (empty: none, or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")] if out.returncode == 0 else []


def untrained_pair(work: Path, gpu: bool) -> dict[str, Path]:
    """Checkpoints to export: real bodies with seeded heads on a GPU, tiny BERTs on a CPU."""
    from elang.export.classify.tiny import SAMPLE_LABELS, TINY_SUPER, TINY_SWIFT, make_tiny_checkpoint

    if not gpu:
        return {
            "swift": make_tiny_checkpoint(work / "swift", TINY_SWIFT),
            "super": make_tiny_checkpoint(work / "super", TINY_SUPER),
        }
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from elang.export.classify.pretrained import resolve
    from elang.export.pipeline import default_cache

    out = {}
    for seed, (role, name) in enumerate((("swift", "minilm-l6"), ("super", "mpnet-base"))):
        base = resolve(name, default_cache())
        torch.manual_seed(seed)
        labels = dict(enumerate(SAMPLE_LABELS))
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()}
        )
        out[role] = work / role
        model.save_pretrained(out[role])
        AutoTokenizer.from_pretrained(base).save_pretrained(out[role])
    return out


def export_repositories(pair: dict[str, Path], work: Path, log: CheckLog) -> dict[str, Path]:
    """One repository per GPU runtime, both stages with GPU instances and the CUDA provider."""
    from elang.export.classify.stage import export_stage
    from elang.export.classify.tiny import sample_rows

    sample = [t for t, _ in sample_rows()]
    repos = {}
    for runtime in RUNTIMES:
        repo = work / f"repo-{runtime}"
        for role in ("swift", "super"):
            export_stage(pair[role], role, repo, sample_texts=sample, runtime=runtime, gpu=True)
        repos[runtime] = repo
        log.passed(f"exported swift and super for {runtime} --gpu (parity on the CPU's ONNX Runtime)")
    return repos


def check_configs(repos: dict[str, Path], log: CheckLog) -> None:
    """Every config parses; GPU instances; the CUDA provider and IO binding where ORT runs in Python."""
    from elang.repository.config import model_config, parameters
    from elang.repository.writer import model_names

    for runtime, repo in repos.items():
        for name in model_names(repo):
            cfg = model_config(repo, name)
            if cfg is None:
                raise AssertionError(f"{repo}/{name}/config.pbtxt does not parse")
            params = parameters(cfg)
            if name in c.STAGES and runtime == "python-ort":
                if not params.get("providers", "").startswith("CUDAExecutionProvider"):
                    raise AssertionError(f"{runtime}/{name}: providers {params.get('providers')!r}, not CUDA first")
            if cfg.platform in ("onnxruntime_onnx", "tensorrt_plan") and not any(
                g.kind == g.KIND_GPU for g in cfg.instance_group
            ):
                raise AssertionError(f"{runtime}/{name}: no GPU instance group")
        log.passed(f"{runtime}: every config parses, with GPU instances (the CUDA provider first in Python)")


def prepare(repo: Path, dest: Path, build_engines: bool, log: CheckLog) -> Path:
    """The chart's init container: ``python3 -m elang.ops.prepare`` (with ``--build-engines`` on a GPU)."""
    cmd = [sys.executable, "-m", "elang.ops.prepare", f"--source={repo}", f"--dest={dest}"]
    if build_engines:
        cmd.append("--build-engines")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    scripts = sorted(dest.glob("*/1/build_engine.sh"))
    if not scripts or not all('"$TRTEXEC" --onnx=model.onnx --saveEngine=model.plan' in s.read_text() for s in scripts):
        raise AssertionError(f"{dest}: no build_engine.sh with the trtexec line")
    if build_engines:
        missing = [s.parent for s in scripts if not (s.parent / "model.plan").is_file()]
        if missing:
            raise AssertionError(f"no engine built in {', '.join(map(str, missing))}")
        log.passed(f"prepare --build-engines built {len(scripts)} TensorRT engines")
    else:
        log.passed(f"prepare copied the TensorRT repository ({len(scripts)} engine scripts with the trtexec line)")
    return dest


def bench(repo: Path, report: Path, limit: int, log: CheckLog, label: str) -> None:
    """``elang bench`` through the real server, printing its ratio lines."""
    cmd = [sys.executable, "-m", "elang.cli", "bench", "--repository", str(repo), "--concurrency", "1,8",
           "--limit", str(limit), "--report", str(report)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"bench on {label} failed ({out.returncode}): {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        if "x Super-only" in line or "headline" in line or line.startswith("| "):
            print(f"  {label}: {line}")
    log.passed(f"bench through the server on {label} (report {report})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/elang-gpu-check"), help="scratch folder (emptied)")
    p.add_argument("--swift", type=Path, help="a trained Swift checkpoint (default: see the module doc)")
    p.add_argument("--super", dest="super_", type=Path, help="a trained Super checkpoint")
    p.add_argument("--limit", type=int, default=800, help="test texts per bench configuration (default 800)")
    p.add_argument("--cpu", action="store_true", help="check only what a CPU can, even where a GPU is present")
    args = p.parse_args(argv)
    cards = [] if args.cpu else gpu_names()
    gpu = bool(cards)
    print(
        f"GPU: {', '.join(cards)}"
        if gpu
        else "no NVIDIA GPU here (nvidia-smi lists none): checking what a CPU can check"
    )
    log = CheckLog()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    if args.swift and args.super_:
        pair = {"swift": args.swift, "super": args.super_}
    else:
        pair = untrained_pair(args.work / "checkpoints", gpu)
        kind = "the pretrained bodies with seeded untrained heads: speed only" if gpu else "tiny BERTs from a config"
        log.passed(f"pair: {kind}")
    repos = export_repositories(pair, args.work, log)
    check_configs(repos, log)
    if gpu:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise AssertionError(f"ONNX Runtime has no CUDA provider here: {ort.get_available_providers()}")
        log.passed("ONNX Runtime offers the CUDA provider")
    repos["tensorrt"] = prepare(repos["tensorrt"], args.work / "prepared-tensorrt", gpu, log)
    if gpu:
        for runtime, repo in repos.items():
            bench(repo, args.work / f"bench-{runtime}", args.limit, log, runtime)
    else:
        log.skip("the CUDA provider, TensorRT engine builds, serving on the GPU and the bench ratios (no GPU)")
    print(f"\n{len(log.ok)} checks passed in {time.monotonic() - log.t0:.0f} s; not run: {len(log.skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
