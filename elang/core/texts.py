"""Validation of the TEXT input: the one place that decides what a bad row is.

Used by the Triton adapters (router and classifiers) and by the client before it
sends anything, so a caller sees the same message either way.
"""

from __future__ import annotations

import numpy as np

from elang.contract import DEFAULT_MAX_TEXT_BYTES, TEXT


class InputError(ValueError):
    """The request's input is wrong; the message names the tensor, the row and the problem."""


def decode_texts(array: np.ndarray | None, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> list[str]:
    """Turn a TEXT tensor (shape [rows, 1] of bytes) into a list of strings.

    Refused with :class:`InputError`: a missing tensor, zero rows, a shape other than
    [rows, 1], an empty or whitespace-only text, a text over ``max_text_bytes`` bytes,
    and bytes that are not valid UTF-8. Texts longer than the model's maximum token
    length are not refused here: the tokenizer truncates them (documented behaviour).
    """
    if array is None:
        raise InputError(f"input {TEXT} is missing")
    arr = np.asarray(array)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != 1:
        raise InputError(f"input {TEXT} must have shape [rows, 1], got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise InputError(f"input {TEXT} has zero rows; send at least one text")
    texts: list[str] = []
    for i, item in enumerate(arr[:, 0]):
        if isinstance(item, str):
            raw = item.encode("utf-8", errors="surrogatepass")
        elif isinstance(item, (bytes, bytearray, np.bytes_)):
            raw = bytes(item)
        else:
            raise InputError(f"input {TEXT} row {i} is {type(item).__name__}, expected UTF-8 bytes")
        if len(raw) > max_text_bytes:
            raise InputError(f"input {TEXT} row {i} is {len(raw)} bytes, over the limit of {max_text_bytes} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"input {TEXT} row {i} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            raise InputError(f"input {TEXT} row {i} is empty; every row needs some text")
        texts.append(text)
    return texts


def encode_texts(texts: list[str]) -> np.ndarray:
    """The inverse of :func:`decode_texts`: a [rows, 1] object array of UTF-8 bytes."""
    return np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_).reshape(len(texts), 1)


def truncation_summary(lengths: list[int] | np.ndarray, max_length: int) -> str:
    """How many texts ``max_length`` tokens cut, with the token lengths' percentiles: what train,
    export and calibrate print, so that a cut nobody asked for is never silent."""
    n = np.asarray(lengths, dtype=np.int64)
    if n.size == 0:
        return f"no texts to measure against max_length {max_length}"
    cut = int(np.sum(n > max_length))
    p50, p90, p99 = (int(np.percentile(n, q)) for q in (50, 90, 99))
    line = (
        f"{cut} of {n.size} texts ({cut / n.size:.1%}) are longer than max_length {max_length} tokens and are cut "
        f"(token lengths p50 {p50}, p90 {p90}, p99 {p99}, max {int(n.max())})"
    )
    if cut / n.size > 0.05:
        line += "; a longer --max-length keeps more of each text, at more cost per text"
    return line
