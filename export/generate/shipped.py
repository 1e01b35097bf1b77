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
SHIPPED_SHA256: dict[str, dict[str, str]] = {'super': {'config.json': 'a78e5fe2d40f9a2b159e4b59724479dfa5391190dbe1b0e0054f882d3a1867ee',
           'generation_config.json': '8145d7eecabff8e16a9876617a6d52728e9b8fbe24c426e6bf9ebbd6bfb87737',
           'metrics.json': '5b7d472ef004a203a82461d8aee72cf36ac441f2edb6c44d10a4fbcaf4031598',
           'model.safetensors': 'fe8ae08398f241a8e5da1209565485aa34ea2b60ec9cb2b3d027a29bd63f5953',
           'seq2seq.json': '587fa0a5a471249bcbb14bfab36406209d177f6a525e1b2798969e0b845c3c78',
           'special_tokens_map.json': '5e4d1f5e759d74cb1c2fe1d165cfc62b5237aa904de759380cd6f43042eec723',
           'target_tokenizer/special_tokens_map.json': '5e4d1f5e759d74cb1c2fe1d165cfc62b5237aa904de759380cd6f43042eec723',
           'target_tokenizer/tokenizer.json': '4afb67116b7da90268a25deaa0d4404914f588645b8295bba175eceeacee688b',
           'target_tokenizer/tokenizer_config.json': '695ac2f392d844881663a21ccf38b2250d7afa5fde5fc6684148b64291198455',
           'tokenizer.json': '5d1e950f0ccff84d072c185744945453e33c7fa49a56e3027f50a03c7b0d7945',
           'tokenizer_config.json': '695ac2f392d844881663a21ccf38b2250d7afa5fde5fc6684148b64291198455'},
 'swift': {'config.json': 'ddb5f3c6df9d5937a916fd7f1e83a2a243afbda96f742cdfdecfd7401aa14cf6',
           'generation_config.json': '8145d7eecabff8e16a9876617a6d52728e9b8fbe24c426e6bf9ebbd6bfb87737',
           'metrics.json': '2a7a1babe011e2576da566bd6612cf990fb8181a4b98154440f6983b24c5fbdd',
           'model.safetensors': 'b599069b73a0b873ee78a235b6a9d1adbb3c09dbb13f98ffdbd5d92912f76824',
           'seq2seq.json': '587fa0a5a471249bcbb14bfab36406209d177f6a525e1b2798969e0b845c3c78',
           'special_tokens_map.json': '5e4d1f5e759d74cb1c2fe1d165cfc62b5237aa904de759380cd6f43042eec723',
           'target_tokenizer/special_tokens_map.json': '5e4d1f5e759d74cb1c2fe1d165cfc62b5237aa904de759380cd6f43042eec723',
           'target_tokenizer/tokenizer.json': '4afb67116b7da90268a25deaa0d4404914f588645b8295bba175eceeacee688b',
           'target_tokenizer/tokenizer_config.json': '695ac2f392d844881663a21ccf38b2250d7afa5fde5fc6684148b64291198455',
           'tokenizer.json': '5d1e950f0ccff84d072c185744945453e33c7fa49a56e3027f50a03c7b0d7945',
           'tokenizer_config.json': '695ac2f392d844881663a21ccf38b2250d7afa5fde5fc6684148b64291198455'}}


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
