"""Every module of the package imports (run under Python 3.11 and, by scripts/test-py310.sh,
under the NGC image's Python 3.10); modules that need the export extra only in the main run."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import elang

# Loaded inside Triton's Python stub only (they import triton_python_backend_utils).
STUB_ONLY = "elang.triton."


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(elang.__path__, "elang.")]
    names += [f"elang.client.{m.name}" for m in pkgutil.iter_modules(importlib.import_module("elang.client").__path__)]
    export = importlib.import_module("elang.export")
    names += [m.name for m in pkgutil.walk_packages(export.__path__, "elang.export.")]
    return sorted({n for n in names if not n.startswith(STUB_ONLY) and not n.endswith("__main__")})


SERVING = [m for m in _modules() if not m.startswith("elang.export.")]
EXPORT = [m for m in _modules() if m.startswith("elang.export.")]


@pytest.mark.parametrize("name", SERVING)
def test_serving_modules_import(name):
    importlib.import_module(name)


@pytest.mark.export
@pytest.mark.parametrize("name", EXPORT)
def test_export_modules_import(name):
    importlib.import_module(name)


def test_the_walk_found_the_packages():
    assert {
        "elang.cli.serve",
        "elang.bench.load",
        "elang.client.inputs",
        "elang.core.settings",
        "elang.tasks.generate",
    } <= set(SERVING)
    assert "elang.export.classify.train" in EXPORT


def test_every_source_file_compiles_on_this_python():
    """Syntax of this interpreter (3.10 in scripts/test-py310.sh) for every file, export included."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [p for d in ("elang", "client", "export") for p in (root / d).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        compile(path.read_text(), str(path), "exec")
