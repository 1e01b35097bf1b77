"""The data a pair was trained on is remembered, and other data is refused unless allowed."""

from __future__ import annotations

import argparse

import pytest

from elang.data import spec as dataspec
from elang.data.datasets import DatasetError


def _csv(tmp_path, name, n=60):
    f = tmp_path / name
    f.write_text("text,label\n" + "".join(f"text {name} {i},{'ab'[i % 2]}\n" for i in range(n)))
    return f


def _args(**kw):
    p = argparse.ArgumentParser()
    dataspec.add_arguments(p, remembered=True)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return p.parse_args(argv)


def test_remembered_data_is_used_and_other_data_refused(tmp_path):
    mine, other = _csv(tmp_path, "mine.csv"), _csv(tmp_path, "other.csv")
    ckpt, repo = tmp_path / "ckpt", tmp_path / "repo"
    ckpt.mkdir()
    repo.mkdir()
    splits, spec = dataspec.splits_for(_args(data=mine))
    dataspec.save(ckpt, spec, splits)
    assert dataspec.adopt(ckpt, repo).fingerprint == splits.fingerprint
    again, used = dataspec.splits_for(_args(), repo)  # no options: the remembered file
    assert used.path == str(mine.resolve()) and again.fingerprint == splits.fingerprint
    with pytest.raises(DatasetError, match="--allow-other-data"):
        dataspec.splits_for(_args(data=other), repo)
    forced, _ = dataspec.splits_for(_args(data=other, allow_other_data=True), repo)
    assert forced.fingerprint != splits.fingerprint
    # A stage trained on other data is refused by a repository that holds models of this one.
    ckpt2 = tmp_path / "ckpt2"
    ckpt2.mkdir()
    s2, spec2 = dataspec.splits_for(_args(data=other))
    dataspec.save(ckpt2, spec2, s2)
    with pytest.raises(DatasetError, match="trained on"):
        dataspec.adopt(ckpt2, repo)


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="3 or 4 numbers"):
        dataspec.spec_from_args(_args(sizes="1,2"))
    with pytest.raises(ValueError, match="need --data"):
        dataspec.spec_from_args(_args(label_column="y"))
    (tmp_path / dataspec.DATA_FILE).write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not a data record"):
        dataspec.load(tmp_path)
