"""TEXT validation: the messages callers see for bad rows."""

import numpy as np
import pytest

from elang.core.texts import InputError, decode_texts, encode_texts


def test_round_trip_unicode():
    texts = ["hello", "naïve café ☕", "多言語"]
    assert decode_texts(encode_texts(texts)) == texts


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (None, "missing"),
        (np.zeros((0, 1), dtype=object), "zero rows"),
        (np.array([[b"a", b"b"]], dtype=object), r"shape \[rows, 1\]"),
        (np.array([[b""]], dtype=object), "row 0 is empty"),
        (np.array([[b"ok"], [b"   "]], dtype=object), "row 1 is empty"),
        (np.array([[b"\xff\xfe bad"]], dtype=object), "not valid UTF-8"),
        (np.array([[3]], dtype=object), "expected UTF-8 bytes"),
    ],
)
def test_bad_rows(array, match):
    with pytest.raises(InputError, match=match):
        decode_texts(array)


def test_size_limit():
    with pytest.raises(InputError, match="over the limit of 10 bytes"):
        decode_texts(encode_texts(["x" * 11]), max_text_bytes=10)
    assert decode_texts(encode_texts(["x" * 10]), max_text_bytes=10) == ["x" * 10]


def test_truncation_is_counted_with_the_lengths_percentiles():
    from elang.core.texts import truncation_summary

    s = truncation_summary([10] * 59 + [200] * 41, 128)
    assert s.startswith("41 of 100 texts (41.0%) are longer than max_length 128") and "--max-length" in s
    assert "p50 10" in s and "max 200" in s
    assert truncation_summary([10, 20], 128).startswith("0 of 2 texts (0.0%)") and "--max-length" not in \
        truncation_summary([10, 20], 128)  # fmt: skip
    assert "no texts" in truncation_summary([], 64)


def test_a_huge_text_is_cut_before_tokenizing_and_reported_truncated(tiny_repo):
    """One MiB text costs what a few KiB do: cut at CHARS_PER_TOKEN x max_length characters first;
    ordinary texts tokenize exactly as before, and the cut one is marked truncated."""
    from elang.runtimes.classifier import CHARS_PER_TOKEN, TRUNCATED_KEY, TextTokenizer

    tok = TextTokenizer(tiny_repo["work"] / "swift", max_length=32)
    normal = ["a short text", "the service was good " * 20]
    huge = "wonderful " * 110_000  # 1.1 MB
    plain = tok.tokenizer.encode_batch(normal)
    out = tok([*normal, huge])
    assert [list(r) for r in out["input_ids"][:2]] == [e.ids for e in plain]
    assert out[TRUNCATED_KEY].tolist() == [False, True, True]
    assert out["input_ids"][2].tolist() == tok([huge[: 32 * CHARS_PER_TOKEN]])["input_ids"][0].tolist()
