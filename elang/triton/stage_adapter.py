"""The one request loop of the Python-backend stage models (classifier, segment, generator).

A stage adapter says only what it computes on a batch: ``load`` its runtime from the version
folder, ``parse`` one request into an item (raising ``InputError`` for a bad one), and
``compute`` the items of a dynamic batch together into one dict of output tensors per item.
:class:`StageAdapter` does the rest once for all of them: config parameters, the text size
limit, fault injection, one response per request, an INVALID_ARG error for a request with bad
input while the rest of the batch is served, and an INTERNAL error naming the stage for every
request of a batch whose computation failed (never a hang).

``pb_utils`` is handed in (``triton_python_backend_utils`` inside Triton; a small stand-in in
the unit tests), so this module imports without Triton.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.texts import InputError
from elang.triton.common import config_parameters, error_response, fault_sleep_s, request_texts


class StageAdapter:
    """Base of a stage's ``TritonPythonModel``; subclasses set ``pb_utils`` and the three hooks."""

    pb_utils: Any = None
    kind = "stage"  # named in error messages and logs

    # --- hooks ---------------------------------------------------------------------------------
    def load(self, folder: Path, params: dict[str, str]) -> None:
        """Build the runtime from the version folder and the config's parameters."""
        raise NotImplementedError

    def parse(self, request: Any) -> Any:
        """One request's item for :meth:`compute`; raises ``InputError`` for a bad request."""
        return self.texts(request)

    def compute(self, items: list[Any]) -> list[dict[str, np.ndarray]]:
        """The output tensors of each item, in order; may raise (every request then gets an error)."""
        raise NotImplementedError

    # --- the loop --------------------------------------------------------------------------------
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        self.name = args.get("model_name", self.model_config.get("name", self.kind))
        # What the config declares: a computed output it lacks (an older repository's) is not sent.
        self.output_names = {o["name"] for o in self.model_config.get("output", [])}
        params = config_parameters(self.model_config)
        self.max_text_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, c.DEFAULT_MAX_TEXT_BYTES))
        self.logger = self.pb_utils.Logger
        self.fault_injection = params.get(c.PARAM_FAULT_INJECTION, "0") == "1"
        if self.fault_injection:
            self.logger.log_warn(f"{self.name}: fault injection is on ({c.FAULT_SLEEP_PARAM} is honoured)")
        self.load(Path(args["model_repository"]) / args["model_version"], params)

    def texts(self, request: Any) -> list[str]:
        """The request's validated TEXT rows (the size limit from the config)."""
        return request_texts(self.pb_utils, request, self.max_text_bytes)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb = self.pb_utils
        if self.fault_injection:
            time.sleep(fault_sleep_s(requests))
        responses: list[Any] = [None] * len(requests)
        good: list[int] = []
        items: list[Any] = []
        for i, request in enumerate(requests):
            try:
                items.append(self.parse(request))
            except InputError as exc:
                responses[i] = error_response(pb, str(exc), invalid_arg=True)
                continue
            good.append(i)
        if not good:
            return responses
        try:
            outputs = self.compute(items)
            if len(outputs) != len(items):
                raise RuntimeError(f"{self.kind} returned {len(outputs)} answers for {len(items)} requests")
        except Exception as exc:  # noqa: BLE001 - answer every request, never hang
            self.logger.log_error(f"{self.name}: {self.kind} failed on {len(items)} requests: {exc}")
            for i in good:
                responses[i] = error_response(pb, f"model failed: {exc}", invalid_arg=False)
            return responses
        for i, tensors in zip(good, outputs):
            out = [
                pb.Tensor(name, np.ascontiguousarray(arr))
                for name, arr in tensors.items()
                if not self.output_names or name in self.output_names
            ]
            responses[i] = pb.InferenceResponse(output_tensors=out)
        return responses
