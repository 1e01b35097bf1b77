"""The bare install is the client: a fresh venv with `pip install elang-serve` (no extras) holds
no torch, ONNX Runtime, pytriton or tokenizers, and its `elang classify` and `ElangClient` work
against the real server (started by the full install)."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = {"torch", "onnxruntime", "onnxruntime-gpu", "nvidia-pytriton", "tokenizers", "transformers", "onnx"}


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # A copy of the sources, so that the build does not write into the working tree.
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "pyproject.toml", "README.md", "elang", "client", "export"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        dst = src / name.decode()
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((ROOT / name.decode()).read_bytes())
    out = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return env_dir


def test_bare_install_has_no_server_side_packages(bare: Path) -> None:
    out = subprocess.run(
        [str(bare / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    installed = {p["name"].lower() for p in json.loads(out.stdout)}
    assert "elang-serve" in installed and "tritonclient" in installed and "numpy" in installed
    assert not installed & SERVER_SIDE, f"the bare install pulled {sorted(installed & SERVER_SIDE)}"


def test_bare_install_classifies_through_the_real_server(bare: Path, server, tmp_path: Path) -> None:
    f = tmp_path / "texts.txt"
    f.write_text("a fine day\nthe worst flight ever\n")
    help_out = subprocess.run([str(bare / "bin" / "elang"), "classify", "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0 and "--url" in help_out.stdout, help_out.stderr
    out = subprocess.run(
        [str(bare / "bin" / "elang"), "classify", "--url", server.grpc_url, str(f), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout[out.stdout.index("{") :])["answered"] == 2, out.stdout
    code = (
        "import sys\n"
        "from elang.client import ElangClient\n"
        "r = ElangClient(sys.argv[1]).classify(['good', 'bad', 'fine'])\n"
        "assert len(r.predictions) == 3 and all(p.ok for p in r.predictions), r\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'tokenizers', 'pytriton') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok', r.stats.super_fraction)\n"
    )
    out = subprocess.run(
        [str(bare / "bin" / "python"), "-c", code, server.grpc_url], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr
