"""Triton adapter for `elang`, the public entry point (BLS).

One call to the first stage (Swift) for every row of the dynamic batch, the routing
policy on its logits with each request's own threshold, one call to the next stage
(Super) with only the escalated rows, answers scattered back in row order. A first
stage named by the ``inline_stage`` parameter runs in this process from the copy in
the router's version folder; the other stages are called over BLS.
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
from elang.inputs import InputError, decode_texts
from elang.router import RouterSettings, route_batch
from elang.triton.common import config_parameters, error_response, request_parameters, request_texts
from elang.triton.metrics import RouterMetrics


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.settings = RouterSettings.from_parameters(config_parameters(self.model_config))
        self.logger = pb_utils.Logger
        self._stage_s: dict[str, float] = {}  # per execute: seconds waited for each stage
        self.inline: dict[str, OnnxTextClassifier] = {}
        if self.settings.inline_stage:
            self.inline[self.settings.inline_stage] = load_inline_stage(
                Path(args["model_repository"]) / args["model_version"], self.settings.inline_stage
            )
        self.metrics = RouterMetrics(pb_utils, self.model_config["name"], self.settings)
        self.logger.log_info(f"elang router ready: {self.settings.describe()}")

    def finalize(self) -> None:
        self.metrics.close()

    def _call_stage(self, model: str, texts: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self._run_stage(model, texts)
        finally:
            self._stage_s[model] = self._stage_s.get(model, 0.0) + time.perf_counter() - start

    def _run_stage(self, model: str, texts: np.ndarray) -> np.ndarray:
        if model in self.inline:
            return self.inline[model](decode_texts(texts, self.settings.max_text_bytes))
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
        start = time.perf_counter()
        self._stage_s = {}
        responses = self._execute(requests)
        self.metrics.timing(time.perf_counter() - start, self._stage_s)
        return responses

    def _execute(self, requests: list[Any]) -> list[Any]:
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


def load_inline_stage(version_dir: Path, stage: str) -> OnnxTextClassifier:
    """The first stage's classifier from its copy in the router's version folder."""
    folder = version_dir / stage
    meta = folder / c.INLINE_STAGE_FILE
    if not meta.is_file():
        raise FileNotFoundError(
            f"inline_stage {stage!r}: {meta} not found; rewrite the router (elang export, write_router) "
            f'or set inline_stage to "" to call {stage} over BLS'
        )
    return OnnxTextClassifier(folder, **classifier_options(json.loads(meta.read_text())["parameters"]))
