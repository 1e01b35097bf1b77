"""The dataset loader on good and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elang.data.datasets import DatasetError, load_dataset, make_splits, save_label_map


def _csv(tmp_path, text: str, name: str = "d.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


def _rows(n: int) -> str:
    labels = ["pos", "neg", "neu"]
    return "text,label\n" + "".join(f"text number {i},{labels[i % 3]}\n" for i in range(n))


def test_seeded_splits_are_reproducible_and_disjoint(tmp_path):
    f = _csv(tmp_path, _rows(100))
    a = make_splits(f, seed=3)
    b = make_splits(f, seed=3)
    c = make_splits(f, seed=4)
    assert (len(a.train), len(a.validation), len(a.test), len(a.calibration)) == (60, 10, 20, 10)
    assert a.train.texts == b.train.texts and a.fingerprint == b.fingerprint
    assert a.train.texts != c.train.texts and a.fingerprint != c.fingerprint
    parts = [set(a.train.texts), set(a.validation.texts), set(a.test.texts), set(a.calibration.texts)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 100  # disjoint, nothing lost
    assert "seeded shuffle" in a.describe() and "calibration 10" in a.describe()
    assert a.label_names == ["neg", "neu", "pos"]


def test_sizes_and_label_ids(tmp_path):
    f = _csv(tmp_path, "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(50)))
    s = make_splits(f, sizes=(20, 10, 10))
    assert (len(s.train), len(s.validation), len(s.test)) == (20, 10, 10)
    assert s.label_names == ["0", "1"] and s.train.labels.dtype == np.int64
    assert s.calibration is None and len(s.unused) == 10  # rows beyond the sizes: unlabelled input
    with pytest.raises(DatasetError, match="need 60 rows, the file has 50"):
        make_splits(f, sizes=(30, 20, 10))
    four = make_splits(f, sizes=(20, 10, 10, 5))
    assert len(four.calibration) == 5 and len(four.unused) == 5
    assert four.train.texts == s.train.texts and four.fingerprint == s.fingerprint  # calibration leaves training alone


def test_split_column_is_honoured(tmp_path):
    body = "text,label,split\n" + "a,x,train\nb,y,train\nc,x,validation\nd,y,test\n"
    s = make_splits(_csv(tmp_path, body))
    assert (s.train.texts, s.validation.texts, s.test.texts) == (["a", "b"], ["c"], ["d"])
    assert s.calibration is None and "split column" in s.describe()
    s = make_splits(_csv(tmp_path, body + "e,y,calibration\n"))
    assert s.calibration.texts == ["e"]


def test_two_text_columns_jsonl(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"a": f"q{i}", "b": f"r{i}", "y": i % 2}) + "\n" for i in range(30)))
    s = make_splits(f, text_columns=("a", "b"), label_column="y")
    assert s.train.pairs is not None and len(s.train.pairs) == len(s.train.texts)
    assert all(p.replace("r", "q") == t for t, p in zip(s.train.texts, s.train.pairs))


def test_broken_encoding_is_replaced_and_reported(tmp_path, caplog):
    f = tmp_path / "b.csv"
    f.write_bytes(b"text,label\nbad \xff bytes,a\ngood,b\n")
    ds, _ = load_dataset(f)
    assert ds.texts[0] == "bad \ufffd bytes" and len(ds) == 2
    assert "1 line(s) hold bytes that are not UTF-8 (first: line 2)" in caplog.text
    with pytest.raises(DatasetError, match="line 2, column 5: byte 0xff is not valid utf-8"):
        load_dataset(f, errors="strict")


@pytest.mark.parametrize(
    ("body", "kwargs", "match"),
    [
        ("", {}, "is empty"),
        ("text,label\n", {}, "no rows"),
        ("body,label\nx,a\n", {}, "no column 'text'"),
        ("text,lab\nx,a\n", {}, "no column 'label'"),
        ("text,label\nx,a\ny,b\nz,c\n", {"label_names": ["a", "b"]}, r"labels \['c'\] are not in the label set"),
        ("text,label\nx,a\ny,a\n", {}, "at least two labels"),
        ("text,label\n,a\n ,b\n", {}, "every row has an empty text"),
        ("text,label\nx,\ny,b\n", {}, "no value in label column"),
    ],
)
def test_bad_files(tmp_path, body, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset(_csv(tmp_path, body), **kwargs)


def test_missing_file_and_bad_fractions(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="sum to 1"):
        make_splits(_csv(tmp_path, _rows(30)), fractions=(0.5, 0.5, 0.5))


def test_label_map_file(tmp_path):
    out = save_label_map(tmp_path, ["neg", "pos"])
    assert json.loads(out.read_text()) == {"0": "neg", "1": "pos"}


def test_default_corpus_splits():
    from elang.data.datasets import default_splits

    s = default_splits(sizes=(300, 100, 100))
    assert s.label_names == ["negative", "neutral", "positive"]
    assert len(s.train) == 300 and set(s.train.labels.tolist()) == {0, 1, 2}
    assert len(s.calibration) == 600  # six times validation, from the rows the splits leave unused


def test_quick_splits_have_the_documented_sizes():
    """--quick (train, slenderize, demo) uses 1000/500/1000/1000, what --help and the docs print."""
    from elang.data.datasets import QUICK_SIZES, QUICK_SIZES_ARG, default_splits

    s = default_splits(sizes=QUICK_SIZES)
    assert (len(s.train), len(s.validation), len(s.test), len(s.calibration)) == (1000, 500, 1000, 1000)
    assert QUICK_SIZES_ARG == "1000,500,1000,1000"
    assert "1000/500/1000/1000" in (Path(__file__).resolve().parents[2] / "docs" / "EXPORT.md").read_text()
