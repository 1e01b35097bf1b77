"""The bare install is the client: a fresh venv with `pip install elang-serve` (no extras) holds
no torch, ONNX Runtime, pytriton or tokenizers, and its `elang classify` and `ElangClient` work
against the real server (started by the full install)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = {"torch", "onnxruntime", "onnxruntime-gpu", "nvidia-pytriton", "tokenizers", "transformers", "onnx"}


SOURCES = ("pyproject.toml", "setup.py", "README.md", "elang", "client", "export")


def _copy_sources(dst_root: Path) -> None:
    """The package's files (tracked or new, not ignored), so that a build does not write into the tree."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard", *SOURCES],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, out):
        if not (ROOT / name.decode()).is_file():
            continue  # deleted in the working tree
        dst = dst_root / name.decode()
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((ROOT / name.decode()).read_bytes())


def _source_modules() -> set[str]:
    """Every module of the tree, named as the install names it."""
    names = set()
    for prefix, folder in (("elang", "elang"), ("elang.client", "client"), ("elang.export", "export")):
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join([prefix, *parts]))
    return names


def test_the_wheel_ships_and_imports_every_module(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources, install it apart, import each module from it."""
    import zipfile

    src = tmp_path / "src"
    _copy_sources(src)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "w"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "w").glob("*.whl")
    shipped = {
        n[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        for n in zipfile.ZipFile(wheel).namelist()
        if n.endswith(".py")
    }
    missing = _source_modules() - shipped
    assert not missing, f"the wheel leaves out {sorted(missing)} (a folder without __init__.py?)"
    assert "elang.data" in shipped and any(n.endswith("sample.csv") for n in zipfile.ZipFile(wheel).namelist())
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # The Triton adapters import triton_python_backend_utils, which only the stub provides.
    names = sorted(n for n in shipped if not n.startswith("elang.triton.") or n == "elang.triton.stage_adapter")
    code = (
        "import importlib, sys\n"
        "import elang\n"
        f"assert elang.__file__.startswith({str(target)!r}), elang.__file__\n"
        "bad = []\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{n}: {exc!r}')\n"
        "assert not bad, bad\n"
        "print(len(sys.argv) - 1)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *(n for n in names if not n.endswith("__main__"))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 60


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # A copy of the sources, so that the build does not write into the working tree.
    src = tmp_path_factory.mktemp("src")
    _copy_sources(src)
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


def test_image_install_step_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's pip steps, in a clean venv: the serving modules import without extras."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    req = ROOT / "deploy" / "docker" / "requirements-serve.txt"
    subprocess.run([*pip, "-r", str(req), "onnxruntime"], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(ROOT)], check=True, timeout=600)
    code = "import elang.core.settings, elang.runtimes.classifier, elang.triton.common, elang.calibration.thresholds; print('ok')"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "ok", out.stderr
