"""Segments of a multi-exit encoder: the encoder cut at its exits, one ONNX graph per segment.

Segment 0 takes token ids and the attention mask and returns its exit's logits and the hidden
state; segment k > 0 takes the hidden state and the mask and returns the same. The Triton
stage models (``elang.triton.segment_model``) and the offline tools (parity, calibration
scores) run them through :class:`Segment`. numpy + ONNX Runtime + tokenizers only.

A segment folder holds ``model.onnx``, ``segment.json`` and, for segment 0, the tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.core.execution import StageOutput, concat_carry
from elang.runtimes.classifier import ONNX_FILE, TextTokenizer, make_session

SEGMENT_FILE = "segment.json"
# ONNX tensor names of a segment graph.
IN_IDS, IN_MASK, IN_HIDDEN = "input_ids", "attention_mask", "hidden_in"
OUT_LOGITS, OUT_HIDDEN = "logits", "hidden_out"


@dataclass(frozen=True)
class SegmentInfo:
    """``segment.json``: where this segment sits in the encoder."""

    index: int
    start: int  # layers start+1 .. end (1-based) run here
    end: int  # the exit's layer
    segments: int
    hidden_size: int
    num_labels: int
    temperature: float
    layers_total: int
    source: str = ""  # identity of the checkpoint's weights: segments cut from one model share it
    # FLOPs of answering at this exit (all layers below it) over those of the full model at full depth
    # (for a slenderized model: the unpruned one), at the parity texts' mean length; 0: unknown.
    flops_share: float = 0.0

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == self.segments - 1

    @classmethod
    def read(cls, folder: Path) -> SegmentInfo:
        path = Path(folder) / SEGMENT_FILE
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a segment description ({exc})") from None

    def write(self, folder: Path) -> None:
        (Path(folder) / SEGMENT_FILE).write_text(json.dumps(self.__dict__, indent=2))


def used_width(mask: np.ndarray) -> int:
    """Columns up to the last one any row attends to (at least one): the rest is padding."""
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    return int(cols[-1]) + 1 if cols.size else 1


def is_segment(folder: Path) -> bool:
    return (Path(folder) / SEGMENT_FILE).is_file()


class Segment:
    """One segment on ONNX Runtime: texts (segment 0) or a carry in, a :class:`StageOutput` out."""

    def __init__(
        self,
        folder: str | Path,
        max_length: int = 128,
        intra_op_threads: int = 0,
        providers: list[str] | None = None,
        spinning: bool = False,
        engine: str = "onnxruntime",
        precision: str = "fp32",
        streams: int = 1,
    ) -> None:
        folder = Path(folder)
        self.info = SegmentInfo.read(folder)
        self.session = make_session(
            folder / ONNX_FILE, intra_op_threads, providers, spinning, engine, precision, streams
        )
        self.tokenizer = TextTokenizer(folder, max_length) if self.info.first else None

    def __call__(self, inputs: list[str] | dict[str, np.ndarray]) -> StageOutput:
        if self.info.first:
            if isinstance(inputs, dict):
                raise ValueError("segment 0 takes texts, not a hidden state")
            return self.from_texts(list(inputs))
        if not isinstance(inputs, dict):
            raise ValueError(f"segment {self.info.index} takes {c.HIDDEN} and {c.MASK}, not texts")
        return self.from_hidden(inputs[c.HIDDEN], inputs[c.MASK])

    def from_texts(self, texts: list[str]) -> StageOutput:
        if not texts:
            raise ValueError("no texts")
        feeds = self.tokenizer(texts)
        mask = feeds["attention_mask"]
        logits, hidden = self.session.run(None, {IN_IDS: feeds["input_ids"], IN_MASK: mask})
        return self._out(logits, hidden, mask)

    def from_hidden(self, hidden: np.ndarray, mask: np.ndarray) -> StageOutput:
        hidden = np.asarray(hidden, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.int64)
        h = self.info.hidden_size
        if hidden.ndim != 3 or hidden.shape[2] != h or mask.shape != hidden.shape[:2]:
            raise ValueError(
                f"segment {self.info.index}: {c.HIDDEN} must be [rows, tokens, {h}] and {c.MASK} [rows, tokens], "
                f"got {list(hidden.shape)} and {list(mask.shape)}"
            )
        # Rows sent on are a subset of the batch that padded them: run them at their own width
        # (trailing columns no row attends to are dropped), and hand the state back at the width
        # it came in, so callers see the same shapes.
        width = used_width(mask)
        logits, out = self.session.run(None, {IN_HIDDEN: hidden[:, :width], IN_MASK: mask[:, :width]})
        if width < mask.shape[1]:
            out = np.pad(out, ((0, 0), (0, mask.shape[1] - width), (0, 0)))
        return self._out(logits, out, None)

    def _out(self, logits: np.ndarray, hidden: np.ndarray, mask: np.ndarray | None) -> StageOutput:
        logits = np.asarray(logits, dtype=np.float32)
        if self.info.last:
            return StageOutput(logits)
        carry = {c.HIDDEN: np.asarray(hidden, dtype=np.float32)}
        if mask is not None:
            carry[c.MASK] = mask
        return StageOutput(logits, carry)


def segment_folders(root: Path) -> list[Path]:
    """``root``'s segment folders in order (seg0, seg1, ...)."""
    found = sorted((p for p in Path(root).iterdir() if is_segment(p)), key=lambda p: SegmentInfo.read(p).index)
    if not found:
        raise FileNotFoundError(f"{root}: no segment folders (with {SEGMENT_FILE})")
    return found


def all_exit_logits(segments: list[Segment], texts: list[str], batch: int = 64, progress: bool = True) -> np.ndarray:
    """Every exit's logits for every text, [texts, exits, labels]: each batch runs all segments."""
    from tqdm import tqdm

    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), len(segments), segments[0].info.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(texts), batch), desc="exits", unit="batch", leave=False, disable=not progress):
        idx = order[start : start + batch]
        res = segments[0]([texts[i] for i in idx])
        out[idx, 0] = res.logits
        carry = res.carry
        for k, seg in enumerate(segments[1:], start=1):
            res = seg(carry)
            out[idx, k] = res.logits
            if res.carry is not None:
                carry = {**carry, **res.carry}
    return out


def merge_requests(carries: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[tuple[int, int, int]]]:
    """Several requests' carries in one batch, and each request's (start, stop, own width) to split back."""
    spans, start = [], 0
    for carry in carries:
        n = len(carry[c.MASK])
        spans.append((start, start + n, carry[c.MASK].shape[1]))
        start += n
    return concat_carry(carries), spans
