"""Fingerprints of a repository's stages, so that a calibration knows which models it was made on.

A stage's fingerprint hashes the files its model is made of (ONNX graphs and their external
data, OpenVINO IRs, tokenizer and label files) in the stage's folder and, for native runtimes, its
``NAME_onnx`` / ``NAME_tokenizer`` folders; not configs (``elang tune`` changes those), adapter
code or TensorRT engines built later from the same ONNX. ``elang calibrate --apply`` records
them in the router's ``stage_hashes`` parameter; the router compares them at load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

MODEL_SUFFIXES = (".onnx", ".data", ".xml", ".bin", ".json", ".txt", ".model")
SKIP = {"calibration.json"}
PREFIX = 16  # hex characters kept: collisions are not the threat model, changes are


def stage_files(repo: Path, stage: str) -> list[Path]:
    files: list[Path] = []
    for folder in (stage, f"{stage}_onnx", f"{stage}_tokenizer"):
        root = Path(repo) / folder
        if root.is_dir():
            files += [
                p
                for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix in MODEL_SUFFIXES and p.name not in SKIP and "__pycache__" not in p.parts
            ]
    return files


def stage_fingerprint(repo: Path, stage: str) -> str:
    files = stage_files(repo, stage)
    if not files:
        return "missing"
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(repo).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:PREFIX]


def stage_hashes(repo: Path, stages: Iterable[str]) -> str:
    """The ``stage_hashes`` parameter value: ``"swift=0123...,super=4567..."``."""
    return ",".join(f"{s}={stage_fingerprint(repo, s)}" for s in stages)


def stale_stages(repo: Path, recorded: str) -> list[str]:
    """Stages whose files differ from ``recorded`` (a ``stage_hashes`` value; empty: none recorded)."""
    stale = []
    for item in filter(None, (x.strip() for x in recorded.split(","))):
        stage, _, want = item.partition("=")
        if stage_fingerprint(repo, stage) != want:
            stale.append(stage)
    return stale


def stale_message(router: str, version: str, stale: list[str]) -> str:
    return (
        f"elang router {router}: calibration {version} is stale: stage(s) {', '.join(stale)} changed since it "
        "was made (re-exported?); run elang calibrate --apply again"
    )
