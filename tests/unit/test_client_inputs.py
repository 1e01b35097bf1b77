"""Reading texts for the client."""

import pytest

from elang.client.inputs import InputFileError, read_texts


def test_lines_keep_blank_ones_so_outputs_line_up(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("first\n\nsecond\n")
    assert read_texts(str(f)) == (["first", "", "second"], None)


def test_invalid_utf8_is_refused_naming_the_line_unless_asked(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("text\nfine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"t\.csv line 3, column 4: byte 0xe9 is not valid utf-8"):
        read_texts(str(f))
    assert read_texts(str(f), encoding="latin-1")[0] == ["fine", "café"]
    assert read_texts(str(f), errors="replace")[0] == ["fine", "caf\ufffd"]
    with pytest.raises(InputFileError, match="unknown encoding 'klingon'"):
        read_texts(str(f), encoding="klingon")


def test_csv_with_labels(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('text,label\n"a, b",positive\nc,negative\n')
    assert read_texts(str(f), label_column="label") == (["a, b", "c"], ["positive", "negative"])


def test_csv_keeps_empty_cells_so_nothing_is_lost(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('text\nfine\n""\n')
    assert read_texts(str(f))[0] == ["fine", ""]


def test_jsonl_and_tsv(tmp_path):
    j = tmp_path / "t.jsonl"
    j.write_text('{"sentence": "x", "y": 1}\n{"sentence": "z", "y": 0}\n')
    assert read_texts(str(j), text_column="sentence", label_column="y") == (["x", "z"], ["1", "0"])
    t = tmp_path / "t.tsv"
    t.write_text("text\tlabel\nhello\tpos\n")
    assert read_texts(str(t)) == (["hello"], None)


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "match"),
    [
        ("t.csv", "body\nx\n", {}, "no column 'text'"),
        ("t.csv", "text\nx\n", {"label_column": "label"}, "no column 'label'"),
        ("t.jsonl", "not json\n", {}, "line 1: not JSON"),
        ("t.jsonl", '{"x": 1}\n', {}, "no field 'text'"),
        ("t.txt", "\n\n", {}, "holds no texts"),
        ("t.txt", "a\n", {"label_column": "y"}, "labels need"),
    ],
)
def test_bad_files(tmp_path, name, content, kwargs, match):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(InputFileError, match=match):
        read_texts(str(f), **kwargs)


def test_missing_file():
    with pytest.raises(InputFileError, match="cannot read"):
        read_texts("/nonexistent/file.txt")
