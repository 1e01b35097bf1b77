"""Prepare a served repository in a writable place: the Helm chart's init container.

    python3 -m elang.ops.prepare --source /models/python-ort --dest /prepared/repo \
        [--build-engines] [--max-queue-size 64 --stage-timeout-s 30 ...]

Copies the repository (read-only sources: a PVC, the image, a fetched folder) to ``--dest``,
applies serving knobs with ``elang.repository.writer.tune_repository`` (queues, deadlines, instances:
the same knobs as ``elang tune``), and with ``--build-engines`` runs every stage's
``build_engine.sh`` (TensorRT engines must be built on the GPU that serves them) with
``trtexec`` found on PATH or at its place in NVIDIA's images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from elang.repository.writer import ServingKnobs, tune_repository

TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")

# ServingKnobs field -> command-line option (the chart passes the options it was given).
KNOB_OPTIONS = {
    "router_instances": ("--router-instances", int),
    "queue_delay_us": ("--max-queue-delay-us", int),
    "max_queue_size": ("--max-queue-size", int),
    "queue_timeout_s": ("--queue-timeout-s", float),
    "queue_scope": ("--queue-scope", str),
    "stage_timeout_s": ("--stage-timeout-s", float),
    "stage_inflight": ("--stage-inflight", int),
    "stage_queue_rows": ("--stage-queue-rows", int),
}


class PrepareError(RuntimeError):
    pass


def find_trtexec() -> str:
    found = os.environ.get("TRTEXEC") or shutil.which("trtexec")
    if found:
        return found
    for path in TRTEXEC_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise PrepareError(
        "trtexec not found on PATH nor at " + ", ".join(TRTEXEC_PATHS) + " (set TRTEXEC=/path/to/trtexec; "
        "the engine build needs an NGC TensorRT or Triton image with a GPU)"
    )


def copy_repository(source: Path, dest: Path) -> None:
    if not (source / "elang").is_dir() and not any(source.glob("*/config.pbtxt")):
        raise PrepareError(f"{source} is not a model repository (no */config.pbtxt)")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, symlinks=False)


def build_engines(repo: Path, trtexec: str) -> list[Path]:
    scripts = sorted(repo.glob("*/*/build_engine.sh"))
    if not scripts:
        raise PrepareError(f"{repo} has no build_engine.sh (export with --runtime tensorrt)")
    for script in scripts:
        print(f"prepare: building {script.parent / 'model.plan'}", flush=True)
        subprocess.run(["bash", str(script)], check=True, env={**os.environ, "TRTEXEC": trtexec})
    return scripts


def prepare(source: Path, dest: Path, knobs: dict, engines: bool) -> list[str]:

    copy_repository(Path(source), Path(dest))
    changed = tune_repository(Path(dest), ServingKnobs(**knobs)) if knobs else []
    if engines:
        build_engines(Path(dest), find_trtexec())
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m elang.ops.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, required=True, help="the repository as shipped (read-only is fine)")
    p.add_argument("--dest", type=Path, required=True, help="a writable folder the server then serves")
    p.add_argument("--build-engines", action="store_true", help="run every stage's build_engine.sh (TensorRT)")
    for field, (option, kind) in KNOB_OPTIONS.items():
        p.add_argument(option, dest=field, type=kind, default=None)
    args = p.parse_args(argv)
    knobs = {f: getattr(args, f) for f in KNOB_OPTIONS if getattr(args, f) is not None}
    try:
        changed = prepare(args.source, args.dest, knobs, args.build_engines)
    except (PrepareError, subprocess.CalledProcessError) as e:
        print(f"prepare: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # RepositoryError, bad knob values: named, not a traceback
        print(f"prepare: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"prepare: {args.source} -> {args.dest}; tuned: {', '.join(changed) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
