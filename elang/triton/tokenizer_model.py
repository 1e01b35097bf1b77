"""Triton adapter for `NAME_tokenizer` in the native ensemble: TEXT in, token id tensors out.

Pads to ``max_length`` so that the ONNX model's dynamic batcher can join requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.core.texts import InputError
from elang.runtimes.classifier import TextTokenizer
from elang.triton.common import config_parameters, error_response, request_texts


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = config_parameters(json.loads(args["model_config"]))
        model_dir = Path(args["model_repository"]) / args["model_version"]
        self.max_text_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES))
        self.outputs = params["outputs"].split(",")
        self.tokenizer = TextTokenizer(
            model_dir, int(params.get(c.PARAM_MAX_LENGTH, c.DEFAULT_MAX_LENGTH)), pad_to_max_length=True
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                feeds = self.tokenizer(request_texts(pb_utils, request, self.max_text_bytes))
            except InputError as exc:
                responses.append(error_response(pb_utils, str(exc), invalid_arg=True))
                continue
            tensors = [pb_utils.Tensor(n, np.ascontiguousarray(feeds[n])) for n in self.outputs]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
