"""Triton adapter for `swift` and `super`: TEXT (BYTES) in, LOGITS (FP32) and TRUNCATED (BOOL: the
text was cut at max_length tokens; answered only where the config declares it) out.

All valid requests of a dynamic batch are tokenized and run through ONNX Runtime together
(``elang.runtimes.classifier``); the request loop, errors and fault injection are ``StageAdapter``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.runtimes.classifier import OnnxTextClassifier, classifier_options
from elang.triton.common import split_rows
from elang.triton.stage_adapter import StageAdapter


class TritonPythonModel(StageAdapter):
    pb_utils = pb_utils
    kind = "classifier"

    def load(self, folder: Path, params: dict[str, str]) -> None:
        self.classifier = OnnxTextClassifier(folder, **classifier_options(params))

    def compute(self, items: list[Any]) -> list[dict[str, np.ndarray]]:
        logits, cut = self.classifier.classify([t for texts in items for t in texts])
        return [
            {c.LOGITS: logits[rows].astype(np.float32), c.TRUNCATED: cut[rows].reshape(-1, 1)}
            for rows in split_rows([len(t) for t in items])
        ]
