#!/usr/bin/env python3
"""Issue 27's remote-hop overhead: the Super co-located (BLS) against the Super on another
Triton server (remote_stages, asyncio gRPC), one interleaved `elang bench` run.

    .venv/bin/python scripts/remote-hop-bench.py REPO OUT [--concurrency 1,8] [--limit 800]

REPO is a pair's repository (swift, super, elang). Server B serves a copy of its `super`; the
bench's server A serves REPO's models plus `elang_remote`, the `elang` router with
`remote_stages=super=grpc://B/super`. Both servers run on this machine, so the figure is the
hop's own cost (gRPC, serialization, a second process's queue), not a network's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from elang import contract as c
from elang.ops.server import TritonServer
from elang.repository.writer import parse_config, render_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repository", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--concurrency", default="1,8")
    p.add_argument("--limit", type=int, default=800)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="remote-hop-"))
    a, b = work / "a", work / "b"
    shutil.copytree(args.repository, a, ignore=shutil.ignore_patterns(".elang-staging-*", "super_*", "elang_*"))
    b.mkdir()
    shutil.copytree(args.repository / c.SUPER_MODEL, b / c.SUPER_MODEL)
    with TritonServer(b, startup_timeout_s=300) as srv_b:
        shutil.copytree(a / c.ROUTER_MODEL, a / "elang_remote")
        cfg = parse_config((a / "elang_remote" / "config.pbtxt").read_text())
        cfg.name = "elang_remote"
        cfg.parameters[c.PARAM_REMOTE_STAGES].string_value = f"super=grpc://{srv_b.grpc_url}/super"
        (a / "elang_remote" / "config.pbtxt").write_text(render_config(cfg))
        print(f"server B (the remote Super) at {srv_b.grpc_url}; bench on {a}", flush=True)
        cmd = [
            str(Path(sys.executable).parent / "elang"), "bench", "--repository", str(a),
            "--concurrency", args.concurrency, "--limit", str(args.limit), "--report", str(args.out),
        ]  # fmt: skip
        rc = subprocess.call(cmd)
    shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
