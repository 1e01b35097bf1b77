"""Triton adapter for a generating stage (a seq2seq `swift` or `super`): TEXT (and an optional
per-row MAX_NEW_TOKENS) in; OUTPUT_TEXT, TOKEN_IDS, TOKEN_ENERGY, NUM_TOKENS and (where the config
declares it) TOKEN_MARGIN out.

All valid requests of a dynamic batch generate together (``elang.runtimes.generator``); the request
loop, errors and fault injection are ``StageAdapter``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.core.texts import InputError
from elang.runtimes.generator import OnnxSeq2SeqGenerator, generator_options
from elang.triton.common import split_rows
from elang.triton.stage_adapter import StageAdapter


class TritonPythonModel(StageAdapter):
    pb_utils = pb_utils
    kind = "generator"

    def load(self, folder: Path, params: dict[str, str]) -> None:
        self.generator = OnnxSeq2SeqGenerator(folder, **generator_options(params))

    def parse(self, request: Any) -> tuple[list[str], np.ndarray, bool]:
        rows = self.texts(request)
        asked = list(request.requested_output_names() or [])  # none named: every output
        return rows, _caps(request, len(rows), self.generator.max_new_tokens), not asked or c.TOKEN_MARGIN in asked

    def compute(self, items: list[Any]) -> list[dict[str, np.ndarray]]:
        gen = self.generator(
            [t for texts, _, _ in items for t in texts],
            np.concatenate([cap for _, cap, _ in items]),
            # margins cost a softmax over the vocabulary per token: only when declared and asked for
            margins=c.TOKEN_MARGIN in self.output_names and any(m for _, _, m in items),
        )
        return [gen.tensors(rows) for rows in split_rows([len(cap) for _, cap, _ in items])]


def _caps(request: Any, rows: int, cap: int) -> np.ndarray:
    """The request's per-row MAX_NEW_TOKENS (optional input), each within 1..cap."""
    tensor = pb_utils.get_input_tensor_by_name(request, c.MAX_NEW_TOKENS)
    if tensor is None:
        return np.full(rows, cap, dtype=np.int64)
    v = np.asarray(tensor.as_numpy()).reshape(-1).astype(np.int64)
    if len(v) != rows:
        raise InputError(f"input {c.MAX_NEW_TOKENS} has {len(v)} rows for {rows} texts")
    if (v < 1).any():
        raise InputError(f"input {c.MAX_NEW_TOKENS} must be >= 1 on every row, got {v.min()}")
    return np.minimum(v, cap)
