"""Downloaded weights are checked against pinned SHA-256s; Hub ids need a pinned revision and
honour HF_HUB_OFFLINE (tested on a local Hub-layout cache: the Hub is unreachable here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from elang.export.classify.pretrained import (
    MINILM_SHA256,
    MPNET_PART_SHA256,
    MPNET_SHA256,
    IntegrityError,
    PretrainedError,
    resolve,
    sha256_of,
    verify_files,
)


def test_every_pin_is_a_sha256():
    for pin in [*MINILM_SHA256.values(), *MPNET_SHA256.values(), *MPNET_PART_SHA256]:
        assert len(pin) == 64 and int(pin, 16) >= 0
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(MINILM_SHA256) & set(MPNET_SHA256)


def test_a_changed_file_is_refused_by_name(tmp_path: Path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "config.json").write_text("{}")
    pins = {name: sha256_of(folder / name) for name in ("model.safetensors", "config.json")}
    stamp = tmp_path / "verified.json"
    verify_files(folder, pins, stamp)
    assert stamp.is_file()
    verify_files(folder, pins, stamp)  # remembered: not hashed again
    (folder / "model.safetensors").write_bytes(b"\1" * 1000)  # same size, new content and mtime
    with pytest.raises(IntegrityError, match=r"model\.safetensors: SHA-256 [0-9a-f]{64} differs from the pinned"):
        verify_files(folder, pins, stamp)
    (folder / "config.json").unlink()
    with pytest.raises(PretrainedError, match="config.json is missing"):
        verify_files(folder, {"config.json": pins["config.json"]})


@pytest.mark.export
def test_hub_ids_need_a_revision_and_read_the_local_cache_offline(tmp_path: Path):
    from elang.export.classify.tiny import TinySpec, make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt", TinySpec())
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub = tmp_path / "hub"
    snap = hub / "models--acme--tiny-bert" / "snapshots" / commit
    shutil.copytree(ckpt, snap)
    (hub / "models--acme--tiny-bert" / "refs").mkdir()
    (hub / "models--acme--tiny-bert" / "refs" / "main").write_text(commit)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from elang.export.classify.pretrained import resolve, PretrainedError\n"
        "from transformers import AutoModelForSequenceClassification\n"
        "for ref in sys.argv[1:]:\n"
        "    try:\n"
        "        p = resolve(ref, Path('.'))\n"
        "        m = AutoModelForSequenceClassification.from_pretrained(p)\n"
        "        print('OK', ref, p, m.config.num_labels)\n"
        "    except PretrainedError as e:\n"
        "        print('ERR', ref, e)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    refs = [f"acme/tiny-bert@{commit}", "acme/tiny-bert@main", "acme/tiny-bert@" + "f" * 40, "acme/other@main"]
    out = subprocess.run(
        [sys.executable, "-c", code, *refs], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stderr[-2000:]
    assert lines[0].startswith(f"OK acme/tiny-bert@{commit} {snap}") and lines[0].endswith(" 3")
    assert lines[1].startswith("OK acme/tiny-bert@main") and str(snap) in lines[1]
    assert "branch or tag, not a commit" in out.stderr  # @main is not pinned: said
    for line in lines[2:]:
        assert line.startswith("ERR") and "not in the local Hugging Face cache" in line and "HF_HUB_OFFLINE" in line


def test_names_that_are_not_models(tmp_path: Path):
    with pytest.raises(PretrainedError, match="neither a named model"):
        resolve(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(PretrainedError, match="pinned revision, as org/name@revision"):
        resolve("not a hub id@", tmp_path)
