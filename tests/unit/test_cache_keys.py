"""Training cache keys name what a warm start or a teacher holds, not only where it lies."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from elang.core.identity import file_identity, folder_identity


def _checkpoint(folder, weights: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_checkpoint_retrained_in_place_gets_a_new_identity_and_a_copy_keeps_it(tmp_path):
    a = _checkpoint(tmp_path / "a", b"\x01" * 3000)
    first = folder_identity(a)
    assert folder_identity(_checkpoint(tmp_path / "copy", b"\x01" * 3000)) == first
    (a / "model.safetensors").write_bytes(b"\x02" * 3000)  # same size, new weights
    assert folder_identity(a) != first
    big = tmp_path / "big.bin"  # past the first MiB: the last MiB counts too
    big.write_bytes(b"\0" * (3 << 20))
    before = file_identity(big)
    with big.open("r+b") as f:
        f.seek((3 << 20) - 10)
        f.write(b"x")
    assert file_identity(big) != before


def test_seq2seq_keys_follow_the_warm_start_and_the_teacher(tmp_path):
    from elang.export.generate.train import PRESETS, _key

    splits = SimpleNamespace(fingerprint="f")
    ckpt = _checkpoint(tmp_path / "super", b"\x01" * 100)
    for n, field in enumerate(("init_from", "distill_from")):
        recipe = replace(PRESETS["swift"], **{field: str(ckpt)})
        key = _key(recipe, splits)
        assert _key(recipe, splits) == key
        (ckpt / "model.safetensors").write_bytes(bytes([10 + n]) * 100)
        assert _key(recipe, splits) != key, field
    assert _key(PRESETS["swift"], splits) == _key(PRESETS["swift"], splits)


def test_classifier_keys_follow_the_teacher_and_the_base(tmp_path):
    from elang.export.classify.train import Recipe, _key

    splits = SimpleNamespace(fingerprint="f")
    base = _checkpoint(tmp_path / "base", b"\x01" * 100)
    teacher = _checkpoint(tmp_path / "teacher", b"\x05" * 100)
    recipe = Recipe(base=str(base), distill_from=str(teacher))
    key = _key(recipe, base, splits, [])
    (teacher / "model.safetensors").write_bytes(b"\x06" * 100)
    assert _key(recipe, base, splits, []) != key
    key = _key(recipe, base, splits, [])
    (base / "model.safetensors").write_bytes(b"\x07" * 100)
    assert _key(recipe, base, splits, []) != key
