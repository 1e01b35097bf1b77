"""Writes that a running server never sees half done.

A model repository may be read while it is rewritten (a reload after ``elang calibrate
--apply``, ``elang tune``, ``elang export`` of one stage). Files are written to a temporary
name in the same folder and renamed over the old one (``os.replace``: atomic on POSIX);
folders are built beside their destination and swapped in with two renames. Staging names
start with a dot so no tool mistakes them for models.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (readers see the old or the new file, never a part)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def replace_dir(dest: Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder with ``fill(staging)`` and put it at ``dest`` in place of what was there.

    The old folder is renamed away and the new one renamed in, so a reader finds the old
    or the new folder whole; between the two renames (microseconds) ``dest`` is missing.
    If ``fill`` raises, ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.staging-"))
    try:
        fill(staging)
        swap_in(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def swap_in(staging: Path, dest: Path) -> None:
    """Move the finished folder ``staging`` to ``dest`` (same file system), replacing it."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rename(dest, old / dest.name)
    os.rename(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_repository(repo: Path) -> Iterator[Path]:
    """A scratch repository inside ``repo``; on success each model folder written to it replaces
    the same-named folder of ``repo`` (one swap per model), on error nothing in ``repo`` changes."""
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=repo, prefix=".elang-staging-"))
    try:
        yield scratch
        for folder in sorted(scratch.iterdir()):
            swap_in(folder, repo / folder.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
