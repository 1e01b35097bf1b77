"""The G2P pair's trained weights, shipped in the source tree (``weights/g2p/``), each file pinned
by SHA-256 here, as the pretrained MiniLM/MPNet weights are (``elang.export.classify.pretrained``).

Training the pair takes about two hours on a 2-core CPU; with these, ``elang demo --task g2p``
starts at the export. ``scripts/ship-g2p.py`` copies trained checkpoints in and prints the pins
below; the commands that reproduce them are in ``weights/g2p/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from elang.export.classify.pretrained import sha256_of

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "weights" / "g2p"
METRICS_FILE = "metrics.json"

# role -> {file relative to its folder: sha256}. Empty: no pair is shipped yet.
SHIPPED_SHA256: dict[str, dict[str, str]] = {}


class ShippedWeightsError(RuntimeError):
    """A shipped file is missing or does not match its pinned SHA-256."""


def verify_folder(folder: Path, pins: dict[str, str]) -> None:
    """Every pinned file exists in ``folder`` with its SHA-256 (raises ShippedWeightsError)."""
    for rel, want in sorted(pins.items()):
        path = folder / rel
        if not path.is_file():
            raise ShippedWeightsError(f"{path} is missing: restore it from git (git checkout -- {path})")
        got = sha256_of(path)
        if got != want:
            raise ShippedWeightsError(
                f"{path}: SHA-256 {got} does not match the pinned {want}; restore it from git or retrain "
                "(weights/g2p/README.md)"
            )


def shipped_pair(
    root: Path = SHIPPED_DIR, pins: dict[str, dict[str, str]] | None = None
) -> dict[str, tuple[Path, dict]] | None:
    """``{role: (checkpoint folder, its training metrics)}`` of the shipped pair, every file checked
    against its pin; None when this tree ships no pair (an installed wheel, or no pins)."""
    pins = SHIPPED_SHA256 if pins is None else pins
    if not pins or not Path(root).is_dir():
        return None
    out = {}
    for role, files in pins.items():
        folder = Path(root) / role
        verify_folder(folder, files)
        metrics = folder / METRICS_FILE
        out[role] = (folder, json.loads(metrics.read_text()) if metrics.is_file() else {})
    return out


def pins_of(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative paths), what SHIPPED_SHA256 pins."""
    return {str(p.relative_to(folder)): sha256_of(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}
