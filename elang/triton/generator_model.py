"""Triton adapter for a generating stage (a seq2seq `swift` or `super`): TEXT (and an optional
per-row MAX_NEW_TOKENS) in; OUTPUT_TEXT, TOKEN_IDS, TOKEN_ENERGY and NUM_TOKENS out.

All valid requests of a dynamic batch generate together (``elang.generation``); a request with a
bad input gets its own INVALID_ARG error and the rest of the batch is served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.generation import OnnxSeq2SeqGenerator, generator_options
from elang.inputs import InputError
from elang.triton.common import config_parameters, error_response, fault_sleep_s, request_texts, split_rows


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        params = config_parameters(self.model_config)
        folder = Path(args["model_repository"]) / args["model_version"]
        self.max_text_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES))
        self.generator = OnnxSeq2SeqGenerator(folder, **generator_options(params))
        self.logger = pb_utils.Logger
        self.fault_injection = params.get(c.PARAM_FAULT_INJECTION, "0") == "1"
        if self.fault_injection:
            self.logger.log_warn(f"{args['model_name']}: fault injection is on ({c.FAULT_SLEEP_PARAM} is honoured)")

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.fault_injection:
            time.sleep(fault_sleep_s(requests))
        responses: list[Any] = [None] * len(requests)
        good: list[int] = []
        texts: list[str] = []
        caps: list[np.ndarray] = []
        for i, request in enumerate(requests):
            try:
                rows = request_texts(pb_utils, request, self.max_text_bytes)
                caps.append(_caps(request, len(rows), self.generator.max_new_tokens))
            except InputError as exc:
                responses[i] = error_response(pb_utils, str(exc), invalid_arg=True)
                continue
            good.append(i)
            texts += rows
        if not good:
            return responses
        try:
            gen = self.generator(texts, np.concatenate(caps))
        except Exception as exc:  # noqa: BLE001 - answer every request, never hang
            self.logger.log_error(f"generation failed on {len(texts)} rows: {exc}")
            for i in good:
                responses[i] = error_response(pb_utils, f"model failed: {exc}", invalid_arg=False)
            return responses
        for i, rows in zip(good, split_rows([len(cp) for cp in caps])):
            out = gen.tensors(rows)
            responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, a) for n, a in out.items()])
        return responses


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
