"""Pieces shared by the Triton adapters: config parameters, inputs and error responses."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from elang.contract import FAULT_SLEEP_PARAM, TEXT
from elang.core.texts import InputError, decode_texts
from elang.repository.config import json_parameters


def config_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` map of a model config as plain strings."""
    return json_parameters(model_config)


def request_parameters(request: Any) -> dict[str, Any]:
    """A request's parameters (set by tritonclient's ``infer(..., parameters=...)``)."""
    raw = request.parameters()
    if not raw:
        return {}
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"request parameters are not valid JSON: {exc}") from None
    return params if isinstance(params, dict) else {}


def request_texts(pb_utils: Any, request: Any, max_text_bytes: int) -> list[str]:
    """The validated texts of one request; raises InputError."""
    tensor = pb_utils.get_input_tensor_by_name(request, TEXT)
    return decode_texts(None if tensor is None else tensor.as_numpy(), max_text_bytes)


def fault_sleep_s(requests: list[Any]) -> float:
    """Seconds a fault-injecting stage sleeps for this batch: the largest FAULT_SLEEP_PARAM asked for.

    Only models written with ``fault_injection: "1"`` call this (the fault tests and
    ``elang bench --faults``); a malformed value is ignored, never an error.
    """
    longest = 0.0
    for request in requests:
        try:
            value = float(request_parameters(request).get(FAULT_SLEEP_PARAM, 0.0))
        except (InputError, TypeError, ValueError):
            continue
        if value == value and value > longest:  # not NaN
            longest = value
    return min(longest, 3600.0)


def error_response(pb_utils: Any, message: str, invalid_arg: bool) -> Any:
    code = pb_utils.TritonError.INVALID_ARG if invalid_arg else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))


def split_rows(counts: list[int]) -> list[slice]:
    """Slices that cut a concatenated batch back into its requests."""
    bounds = np.cumsum([0, *counts])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
