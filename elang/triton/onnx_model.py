"""Triton adapter for `NAME_onnx` in the `python-ensemble` runtime: token id tensors in, logits out.

The same step as the NGC container's `onnxruntime_onnx` model, run by ONNX Runtime inside
the Python backend, so the two-step layout can be served and measured here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.runtimes.classifier import ONNX_FILE, make_session
from elang.triton.common import config_parameters, error_response


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        cfg = json.loads(args["model_config"])
        params = config_parameters(cfg)
        model_dir = Path(args["model_repository"]) / args["model_version"]
        self.session = make_session(
            model_dir / ONNX_FILE,
            int(params.get("intra_op_thread_count", 0)),
            spinning=params.get(c.PARAM_ORT_SPINNING, "0") == "1",
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = cfg["output"][0]["name"]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = {n: [pb_utils.get_input_tensor_by_name(r, n).as_numpy() for r in requests] for n in self.inputs}
        counts = [len(a) for a in feeds[self.inputs[0]]]
        try:
            logits = self.session.run(None, {n: np.concatenate(v) for n, v in feeds.items()})[0]
        except Exception as exc:  # noqa: BLE001 - answer every request, never hang
            return [error_response(pb_utils, f"model failed: {exc}", invalid_arg=False) for _ in requests]
        out, start = [], 0
        for n in counts:
            t = pb_utils.Tensor(self.output, np.ascontiguousarray(logits[start : start + n], dtype=np.float32))
            out.append(pb_utils.InferenceResponse(output_tensors=[t]))
            start += n
        return out
