"""Shared fixtures: tiny models built once per session, and the real Triton server."""

from __future__ import annotations

import os
from pathlib import Path

# Tests fork tritonserver (subprocess with a preexec_fn) from a process that holds tritonclient
# gRPC channels; gRPC's fork handlers can deadlock that fork (elang/__init__.py sets the same
# for every elang process; here it also covers a test that imports grpc before elang).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest

# Fixtures that build tiny models with torch/transformers (the export extra).
EXPORT_FIXTURES = {"tiny_repo", "server", "offline"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that build models get the `export` mark (the Python 3.10 run leaves them to the main run)."""
    for item in items:
        if EXPORT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.export)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A repository built from tiny random BERT classifiers exported to ONNX (real optimum export)."""
    from elang.export.pipeline import build_tiny_repository

    root = tmp_path_factory.mktemp("tiny")
    info = build_tiny_repository(root / "repo", root / "work", super_fraction=0.3)
    info["work"] = root / "work"
    info["repo"] = Path(info["repository"])
    return info


@pytest.fixture(scope="session")
def server(tiny_repo: dict):
    """The real tritonserver on free 127.0.0.1 ports, stopped by its own PID at the end."""
    from elang.ops.server import TritonServer

    srv = TritonServer(tiny_repo["repo"], startup_timeout_s=180)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def offline(tiny_repo: dict) -> dict:
    """The same ONNX models run directly with ONNX Runtime, as the reference."""
    from elang.runtimes.classifier import OnnxTextClassifier

    return {name: OnnxTextClassifier(tiny_repo["work"] / name) for name in ("swift", "super")}


@pytest.fixture(scope="session")
def labelled_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 distinct labelled texts (two sample sentences each, so no two rows tie in score)."""
    from elang.export.classify.tiny import sample_rows

    rows = sample_rows()
    f = tmp_path_factory.mktemp("data") / "labelled.csv"
    body = "".join(
        f'"{t} {rows[(j + 1 + i) % len(rows)][0]}",{lab}\n' for i in range(10) for j, (t, lab) in enumerate(rows)
    )
    f.write_text("text,label\n" + body)
    return f


@pytest.fixture(scope="session")
def elang_cli():
    """Run the `elang` command in a subprocess: elang_cli(*args, timeout=600, **run_kwargs)."""
    import subprocess
    import sys

    def run(*args: str, timeout: float = 600, **kwargs):
        return subprocess.run(
            [sys.executable, "-m", "elang.cli", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    return run
