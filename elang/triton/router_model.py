"""Triton adapter for `elang`, the public entry point (BLS).

One call to the first stage (Swift) for every row of the dynamic batch, the routing
policy on its logits with each request's own threshold, one call to the next stage
(Super) with only the escalated rows, answers scattered back in row order.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.inputs import InputError
from elang.router import RouterSettings, route_batch
from elang.triton.common import config_parameters, error_response, request_parameters, request_texts
from elang.triton.metrics import RouterMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.settings = RouterSettings.from_parameters(config_parameters(self.model_config))
        self.logger = pb_utils.Logger
        self.metrics = RouterMetrics(pb_utils, self.model_config["name"], self.settings)
        self.logger.log_info(f"elang router ready: {self.settings.describe()}")

    def _call_stage(self, model: str, texts: np.ndarray) -> np.ndarray:
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=[c.LOGITS],
            inputs=[pb_utils.Tensor(c.TEXT, texts)],
            timeout=int(self.settings.stage_timeout_s * 1e6),
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"model '{model}' answered with an error: {response.error().message()}")
        out = pb_utils.get_output_tensor_by_name(response, c.LOGITS)
        if out is None:
            raise RuntimeError(f"model '{model}' returned no {c.LOGITS}")
        return out.as_numpy()

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        good: list[int] = []
        raw: list[np.ndarray] = []
        thresholds: list[list[float]] = []
        for i, request in enumerate(requests):
            try:
                texts = request_texts(pb_utils, request, self.settings.max_text_bytes)
                thresholds.append(self.settings.request_thresholds(request_parameters(request)))
            except InputError as exc:
                responses[i] = error_response(pb_utils, str(exc), invalid_arg=True)
                self.metrics.request("invalid")
                continue
            good.append(i)
            raw.append(pb_utils.get_input_tensor_by_name(request, c.TEXT).as_numpy().reshape(len(texts), 1))
        if not good:
            return responses
        counts = [len(r) for r in raw]
        outcome = route_batch(np.concatenate(raw), counts, thresholds, self.settings, self._call_stage)
        if outcome.result is not None:
            self.metrics.observe(outcome.result.route, outcome.energy)
        else:
            self.metrics.observe(np.full(sum(counts), -1), [])
        for i, answer in zip(good, outcome.per_request(counts)):
            if isinstance(answer, str):
                self.logger.log_error(answer)
                responses[i] = error_response(pb_utils, answer, invalid_arg=False)
                self.metrics.request("failed")
                continue
            self.metrics.request("ok")
            responses[i] = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(name, arr) for name, arr in answer.items()]
            )
        return responses
