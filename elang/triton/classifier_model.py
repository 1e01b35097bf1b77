"""Triton adapter for `swift` and `super`: TEXT (BYTES) in, LOGITS (FP32) out.

All valid requests of a dynamic batch are tokenized and run through ONNX Runtime
together; a request with a bad input gets its own INVALID_ARG error and the rest of
the batch is served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.classifier import OnnxTextClassifier, classifier_options
from elang.inputs import InputError
from elang.triton.common import config_parameters, error_response, fault_sleep_s, request_texts, split_rows


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        params = config_parameters(self.model_config)
        model_dir = Path(args["model_repository"]) / args["model_version"]
        self.max_text_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES))
        self.classifier = OnnxTextClassifier(model_dir, **classifier_options(params))
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
        counts: list[int] = []
        for i, request in enumerate(requests):
            try:
                rows = request_texts(pb_utils, request, self.max_text_bytes)
            except InputError as exc:
                responses[i] = error_response(pb_utils, str(exc), invalid_arg=True)
                continue
            good.append(i)
            texts += rows
            counts.append(len(rows))
        if good:
            try:
                logits = self.classifier(texts)
            except Exception as exc:  # noqa: BLE001 - answer every request, never hang
                self.logger.log_error(f"classifier failed on {len(texts)} rows: {exc}")
                for i in good:
                    responses[i] = error_response(pb_utils, f"model failed: {exc}", invalid_arg=False)
                return responses
            for i, rows in zip(good, split_rows(counts)):
                out = pb_utils.Tensor(c.LOGITS, np.ascontiguousarray(logits[rows], dtype=np.float32))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
        return responses
