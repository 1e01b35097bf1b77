"""What a file or a checkpoint folder *is*, for cache keys: the same bytes copied elsewhere keep
their identity, and a model retrained in place gets a new one (a path alone would not change)."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".json", ".model", ".txt")


def file_identity(path: Path, chunk: int = 1 << 20) -> bytes:
    """Size and a hash of the first and last MiB of ``path``."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return h.digest()


def folder_identity(folder: Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> bytes:
    """:func:`file_identity` of every file of ``folder`` (not its subfolders) with one of ``suffixes``, by name."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix in suffixes:
            h.update(p.name.encode() + b"\0" + file_identity(p))
    return h.digest()
