"""The shipped G2P pair (weights/g2p/): every file matches its pinned SHA-256, and a changed or
missing file is refused with a message that names it."""

from __future__ import annotations

import shutil

import pytest

from elang.export.generate.shipped import (
    SHIPPED_DIR,
    SHIPPED_SHA256,
    ShippedWeightsError,
    pins_of,
    shipped_pair,
    verify_folder,
)


def test_the_shipped_pair_matches_its_pins():
    pair = shipped_pair()
    if not SHIPPED_SHA256:
        assert pair is None
        return
    assert set(pair) == {"swift", "super"}
    for role, (folder, metrics) in pair.items():
        assert folder == SHIPPED_DIR / role and (folder / "config.json").is_file()
        assert set(pins_of(folder)) == set(SHIPPED_SHA256[role])  # nothing unpinned beside them
        assert 0 < metrics["test_wer"] < 1
    size = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file())
    assert size <= 30 * 1024 * 1024


def test_a_changed_or_missing_file_is_refused(tmp_path):
    folder = tmp_path / "super"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    pins = pins_of(folder)
    verify_folder(folder, pins)
    assert shipped_pair(tmp_path, {"super": pins})["super"][0] == folder
    (folder / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(ShippedWeightsError, match="model.safetensors: SHA-256 .* does not match"):
        shipped_pair(tmp_path, {"super": pins})
    shutil.rmtree(folder)
    with pytest.raises(ShippedWeightsError, match="missing"):
        verify_folder(folder, pins)
    assert shipped_pair(tmp_path / "nowhere", {"super": pins}) is None
