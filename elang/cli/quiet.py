"""Keep the CLI's stderr to what the user needs: known third-party noise filtered, and no
progress bars (with their carriage returns) when stderr is not a terminal (a redirected log)."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

# Messages third-party libraries print on every export or training run that tell the user
# nothing actionable (checked against this project's runs).
KNOWN_NOISE = (
    r"torch\.tensor results are registered as constants in the trace",  # TracerWarning (ONNX export)
    r"Converting a tensor to a Python (boolean|integer|float) might cause the trace to be incorrect",
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed\. Please remove usage of this function",
    r"`torch_dtype` is deprecated",
    r"Weight deduplication check in the ONNX export requires accelerate",
)
_NOISE = re.compile("|".join(KNOWN_NOISE))


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE.search(record.getMessage())


def quiet_third_party(verbose: bool = False) -> None:
    """Filter the known noise (unless ``verbose``) and disable progress bars off a terminal."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm >= 4.66 reads it
    if verbose:
        return
    for pattern in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=f".*{pattern}")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise())
    # transformers logs through its own handler; its warnings at this level are the noise above
    # and model-loading notices (newly initialised heads are expected when fine-tuning).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
