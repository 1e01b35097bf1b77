"""Triton adapter for one segment of a multi-exit encoder (``elang.runtimes.segments``).

The first segment takes TEXT and returns LOGITS, HIDDEN and MASK; a later one takes HIDDEN
and MASK and returns LOGITS and HIDDEN (the last one LOGITS only). The requests of a dynamic
batch run together: their hidden states are zero-padded to the longest and cut back to each
request's own width. The request loop, errors and fault injection are ``StageAdapter``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.core.texts import InputError
from elang.runtimes.classifier import classifier_options
from elang.runtimes.segments import Segment, merge_requests
from elang.triton.common import split_rows
from elang.triton.stage_adapter import StageAdapter


class TritonPythonModel(StageAdapter):
    pb_utils = pb_utils
    kind = "segment"

    def load(self, folder: Path, params: dict[str, str]) -> None:
        opts = classifier_options(params)
        opts.pop("length_bucket")
        self.segment = Segment(folder, **opts)

    def parse(self, request: Any) -> Any:
        if self.segment.info.first:
            return self.texts(request)
        got = {}
        for name in (c.HIDDEN, c.MASK):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise InputError(f"missing input {name}")
            got[name] = tensor.as_numpy()
        h, m = got[c.HIDDEN], got[c.MASK]
        size = self.segment.info.hidden_size
        if h.ndim != 3 or h.shape[2] != size or m.shape != h.shape[:2] or h.shape[1] == 0:
            raise InputError(
                f"{c.HIDDEN} must be [rows, tokens, {size}] and {c.MASK} [rows, tokens], "
                f"got {list(h.shape)} and {list(m.shape)}"
            )
        if not np.all(np.isfinite(h)):
            raise InputError(f"{c.HIDDEN} holds NaN or infinite values")
        return got

    def compute(self, items: list[Any]) -> list[dict[str, np.ndarray]]:
        if self.segment.info.first:
            out = self.segment([t for texts in items for t in texts])
            spans = [(s.start, s.stop, None) for s in split_rows([len(t) for t in items])]
        else:
            merged, spans = merge_requests(items)
            out = self.segment(merged)
        answers = []
        for start, stop, width in spans:
            tensors = {c.LOGITS: out.logits[start:stop]}
            for name, arr in (out.carry or {}).items():
                tensors[name] = arr[start:stop] if width is None else arr[start:stop, :width]
            answers.append(tensors)
        return answers
