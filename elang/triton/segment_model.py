"""Triton adapter for one segment of a multi-exit encoder (``elang.segments``).

The first segment takes TEXT and returns LOGITS, HIDDEN and MASK; a later one takes HIDDEN
and MASK and returns LOGITS and HIDDEN (the last one LOGITS only). The requests of a dynamic
batch run together: their hidden states are zero-padded to the longest and cut back to each
request's own width. A request with a bad input gets its own INVALID_ARG error and the rest
of the batch is served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.classifier import classifier_options
from elang.inputs import InputError
from elang.segments import Segment, merge_requests
from elang.triton.common import config_parameters, error_response, fault_sleep_s, request_texts, split_rows


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = config_parameters(config)
        opts = classifier_options(params)
        opts.pop("length_bucket")
        self.segment = Segment(Path(args["model_repository"]) / args["model_version"], **opts)
        self.max_text_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES))
        self.fault_injection = params.get(c.PARAM_FAULT_INJECTION, "0") == "1"
        self.logger = pb_utils.Logger

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.fault_injection:
            time.sleep(fault_sleep_s(requests))
        responses: list[Any] = [None] * len(requests)
        good: list[int] = []
        inputs: list[Any] = []
        for i, request in enumerate(requests):
            try:
                inputs.append(self._inputs(request))
                good.append(i)
            except InputError as exc:
                responses[i] = error_response(pb_utils, str(exc), invalid_arg=True)
        if not good:
            return responses
        try:
            if self.segment.info.first:
                counts = [len(t) for t in inputs]
                out = self.segment([t for texts in inputs for t in texts])
                spans = [(s.start, s.stop, None) for s in split_rows(counts)]
            else:
                merged, spans = merge_requests(inputs)
                out = self.segment(merged)
        except Exception as exc:  # noqa: BLE001 - answer every request, never hang
            self.logger.log_error(f"segment {self.segment.info.index} failed: {exc}")
            for i in good:
                responses[i] = error_response(pb_utils, f"model failed: {exc}", invalid_arg=False)
            return responses
        for i, (start, stop, width) in zip(good, spans, strict=True):
            tensors = [pb_utils.Tensor(c.LOGITS, np.ascontiguousarray(out.logits[start:stop]))]
            for name, arr in (out.carry or {}).items():
                part = arr[start:stop] if width is None else arr[start:stop, :width]
                tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(part)))
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def _inputs(self, request: Any) -> Any:
        if self.segment.info.first:
            return request_texts(pb_utils, request, self.max_text_bytes)
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
