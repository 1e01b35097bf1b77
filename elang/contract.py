"""The serving contract: model names, tensor names, dtypes, parameters and route codes.

Every other part of elang-serve (the Triton adapters, the repository writer, the
client and the tests) reads names from here, so the contract lives in one place.
Only the standard library and numpy are imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Model names in a generated repository.
ROUTER_MODEL = "elang"
SWIFT_MODEL = "swift"
SUPER_MODEL = "super"
# Stage order of the cascade: ROUTE holds an index into this tuple.
STAGES: tuple[str, ...] = (SWIFT_MODEL, SUPER_MODEL)

# Tensor names.
TEXT = "TEXT"
LABEL = "LABEL"
LOGITS = "LOGITS"
# Per row (BOOL): the answering stage cut the text at its max_length tokens (python-ort classifier
# stages answer it; a router reports it when every stage does, parameter report_truncation).
TRUNCATED = "TRUNCATED"
ENERGY = "ENERGY"
ROUTE = "ROUTE"
# Multi-exit models: the layer whose exit answered, the exit policy's score, and the state one
# segment hands to the next (hidden states [rows, tokens, hidden] and the attention mask).
EXIT = "EXIT"
SCORE = "SCORE"
HIDDEN = "HIDDEN"
MASK = "MASK"

# Seq2seq (generating) stages and their router: the generated text, its token ids (EOS included,
# padded after NUM_TOKENS), each token's energy -T*logsumexp(step logits / T) (NaN after
# NUM_TOKENS), and the optional per-row cap on new tokens a generating stage accepts.
OUTPUT_TEXT = "OUTPUT_TEXT"
TOKEN_IDS = "TOKEN_IDS"
TOKEN_ENERGY = "TOKEN_ENERGY"
# Each generated token's probability margin (top-1 minus top-2 softmax probability), what the
# min-margin policy scores; stages answer it where their config declares it.
TOKEN_MARGIN = "TOKEN_MARGIN"
NUM_TOKENS = "NUM_TOKENS"
MAX_NEW_TOKENS = "MAX_NEW_TOKENS"

# Route codes (index of the stage that answered).
ROUTE_SWIFT = 0
ROUTE_SUPER = 1

# Errors that mean "a queue was full or waited too long: retry later": Triton's queue-policy
# refusals and the router's own ("stage 'super' is overloaded ...").
OVERLOAD_ERROR = re.compile(r"maximum queue size|overloaded|queue.*full", re.IGNORECASE)
# A request that waited out its own timeout in a queue (Triton's "Request timeout expired"): the
# model did not take it in time. Not overload: a hung stage looks exactly like this.
DEADLINE_ERROR = re.compile(r"request timeout expired", re.IGNORECASE)


def parse_stages(raw: str | None) -> tuple[str, ...]:
    """The cascade's stage names from the router's ``stages`` parameter (default: swift, super)."""
    return tuple(s.strip() for s in (raw or ",".join(STAGES)).split(",") if s.strip())


def parse_names(raw: str | None) -> tuple[str, ...]:
    """Comma-separated names (e.g. ``inline_stage``), none when empty."""
    return tuple(s.strip() for s in (raw or "").split(",") if s.strip())


# Request parameter that overrides the router's threshold for one request.
THRESHOLD_PARAM = "elang_threshold"
# Request parameter of a generating router: at most this many new tokens per row (<= its cap).
MAX_NEW_TOKENS_PARAM = "max_new_tokens"

# Keys of the router's config.pbtxt `parameters`.
PARAM_POLICY = "policy"
PARAM_THRESHOLD = "threshold"
PARAM_TEMPERATURE = "temperature"
PARAM_STAGES = "stages"
PARAM_NUM_LABELS = "num_labels"
PARAM_STAGE_TIMEOUT_S = "stage_timeout_s"
PARAM_CALIBRATION_VERSION = "calibration_version"
# Written by calibration: "stage=sha256-prefix,..." of each stage's model files; a stage whose files
# changed since (a re-export) makes the calibration stale (router warns, metrics say so).
PARAM_STAGE_HASHES = "stage_hashes"
# The data the repository's models were trained on (its data.json, compact), so that a command
# given only a server's URL finds it (elang bench --url).
PARAM_DATA_SPEC = "data_spec"
# A multi-exit router: the encoder layer of each stage's exit ("2,4,...,12"); stages are segments
# that pass their hidden state on. Absent: a cascade of whole models (the pair).
PARAM_EXIT_LAYERS = "exit_layers"
# What the router serves: "classify" (the default: LABEL/LOGITS) or "generate" (seq2seq stages:
# OUTPUT_TEXT/TOKEN_IDS/TOKEN_ENERGY; the policy aggregates the token energies).
PARAM_TASK = "task"
TASK_CLASSIFY = "classify"
TASK_GENERATE = "generate"
TASK_EXITS = "exits"  # the exits of one multi-exit encoder (older routers: classify + exit_layers)
# A generating stage's (and its router's) cap on new tokens per row.
PARAM_MAX_NEW_TOKENS = "max_new_tokens"
# A generating stage: "1" binds ONNX Runtime inputs/outputs so the KV cache stays on the device
# between steps, "0" never; absent: on whenever the CUDA provider runs.
PARAM_IO_BINDING = "io_binding"
# The stages the router runs in its own process (copies of python-ort, generating or segment
# stages in the router's version folder) instead of over BLS, comma-separated: the first stage
# of a pair, every segment of a multi-exit router; "" = every stage over BLS.
PARAM_INLINE_STAGE = "inline_stage"
PARAM_INLINE_MODE = "inline_mode"  # which stages the router was asked to run in-process (INLINE_MODES)
# Stages on other Triton servers: "STAGE=grpc://HOST:PORT[/MODEL],..." (grpcs:// for TLS); the
# environment variable ELANG_REMOTE_STAGES, when set, replaces it (elang.runtimes.remote).
PARAM_REMOTE_STAGES = "remote_stages"
# "1": the router asks its stages for TRUNCATED and answers it. Set at load time, never written:
# when the router's config declares TRUNCATED and every stage's config does.
PARAM_REPORT_TRUNCATION = "report_truncation"
# Set by a generating router at load: "1" when every stage declares TOKEN_MARGIN (asked for then).
PARAM_STAGE_MARGINS = "stage_margins"
# File next to an inline copy: the stage's config parameters.
INLINE_STAGE_FILE = "stage.json"
# How the router calls each stage (elang.core.execution): rows per call (the stage's max_batch_size,
# written by the repository writer), calls in flight, rows allowed to wait. Each is one number
# for every stage, or "name=value,..." per stage.
PARAM_STAGE_MAX_BATCH = "stage_max_batch"
PARAM_STAGE_INFLIGHT = "stage_inflight"
PARAM_STAGE_QUEUE_ROWS = "stage_queue_rows"
# A stage model with fault_injection "1" honours the request parameter FAULT_SLEEP_PARAM
# (seconds to sleep in execute): how the fault tests and `elang bench --faults` make a stage slow.
PARAM_FAULT_INJECTION = "fault_injection"
FAULT_SLEEP_PARAM = "elang_fault_sleep_s"

# Keys of a classifier model's config.pbtxt `parameters`.
PARAM_MAX_LENGTH = "max_length"
PARAM_INTRA_OP_THREADS = "intra_op_threads"
PARAM_MAX_TEXT_BYTES = "max_text_bytes"
PARAM_LABELS = "labels"
PARAM_LENGTH_BUCKET = "length_bucket"  # rows per length-sorted sub-batch; 0 = one padded batch
# "1" lets ONNX Runtime's idle intra-op threads spin (busy-wait) for work. Off by default: the
# stages share the CPU cores, and a finished Swift that spins steals them from the Super.
PARAM_ORT_SPINNING = "ort_spinning"
# A python-ort classifier stage's engine (onnxruntime or openvino) and precision (fp32, or bf16 or int8
# with openvino): elang.runtimes.openvino.
PARAM_ENGINE = "engine"
PARAM_PRECISION = "precision"
# engine openvino: CPU streams of a stage; > 1 runs a batch's rows as that many parts at once
PARAM_STREAMS = "streams"

# Defaults.
DEFAULT_MAX_LENGTH = 128
DEFAULT_MAX_TEXT_BYTES = 1 << 20
DEFAULT_STAGE_TIMEOUT_S = 60.0
DEFAULT_STAGE_INFLIGHT = 2
DEFAULT_STAGE_QUEUE_ROWS = 256


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the contract: name, Triton dtype, numpy dtype and per-row dims."""

    name: str
    triton_dtype: str  # as in config.pbtxt, e.g. "TYPE_FP32"
    numpy_dtype: type
    dims: tuple[int, ...]  # per row, without the batch dimension; -1 = variable

    @property
    def wire_dtype(self) -> str:
        """Datatype name on the KServe v2 wire (tritonclient), e.g. "FP32"."""
        return self.triton_dtype.removeprefix("TYPE_").replace("STRING", "BYTES")


def text_input() -> TensorSpec:
    return TensorSpec(TEXT, "TYPE_STRING", np.object_, (1,))


def logits_output(num_labels: int) -> TensorSpec:
    return TensorSpec(LOGITS, "TYPE_FP32", np.float32, (num_labels,))


def classifier_outputs(num_labels: int) -> list[TensorSpec]:
    """Outputs of `swift` and `super`: text in, logits out."""
    return [logits_output(num_labels)]


def truncated_output() -> TensorSpec:
    """TRUNCATED: per row, whether the text was cut at the stage's max_length tokens."""
    return TensorSpec(TRUNCATED, "TYPE_BOOL", np.bool_, (1,))


def router_outputs(num_labels: int) -> list[TensorSpec]:
    """Outputs of the public `elang` entry point."""
    return [
        TensorSpec(LABEL, "TYPE_INT64", np.int64, (1,)),
        logits_output(num_labels),
        TensorSpec(ENERGY, "TYPE_FP32", np.float32, (1,)),
        TensorSpec(ROUTE, "TYPE_INT32", np.int32, (1,)),
    ]


def exit_router_outputs(num_labels: int) -> list[TensorSpec]:
    """Outputs of a multi-exit `elang` router: the pair's outputs (ROUTE = the exit's index), plus
    EXIT (the encoder layer that answered) and SCORE (the exit policy's score there)."""
    return [
        *router_outputs(num_labels),
        TensorSpec(EXIT, "TYPE_INT32", np.int32, (1,)),
        TensorSpec(SCORE, "TYPE_FP32", np.float32, (1,)),
    ]


def segment_inputs(first: bool, hidden_size: int) -> list[TensorSpec]:
    """Inputs of a segment stage: texts for the first, the previous segment's state after that."""
    if first:
        return [text_input()]
    return [
        TensorSpec(HIDDEN, "TYPE_FP32", np.float32, (-1, hidden_size)),
        TensorSpec(MASK, "TYPE_INT64", np.int64, (-1,)),
    ]


def segment_outputs(first: bool, last: bool, num_labels: int, hidden_size: int) -> list[TensorSpec]:
    """Outputs of a segment stage: its exit's logits, and the state for the next segment."""
    out = [logits_output(num_labels)]
    if not last:
        out.append(TensorSpec(HIDDEN, "TYPE_FP32", np.float32, (-1, hidden_size)))
    if first and not last:
        out.append(TensorSpec(MASK, "TYPE_INT64", np.int64, (-1,)))
    return out


def generator_inputs() -> list[TensorSpec]:
    """Inputs of a generating stage: texts, and an optional per-row cap on new tokens."""
    return [text_input(), TensorSpec(MAX_NEW_TOKENS, "TYPE_INT32", np.int32, (1,))]


def _generated() -> list[TensorSpec]:
    return [
        TensorSpec(OUTPUT_TEXT, "TYPE_STRING", np.object_, (1,)),
        TensorSpec(TOKEN_IDS, "TYPE_INT64", np.int64, (-1,)),
        TensorSpec(TOKEN_ENERGY, "TYPE_FP32", np.float32, (-1,)),
        TensorSpec(NUM_TOKENS, "TYPE_INT32", np.int32, (1,)),
    ]


def generator_outputs() -> list[TensorSpec]:
    """Outputs of a generating stage (a seq2seq `swift` or `super`)."""
    return [*_generated(), TensorSpec(TOKEN_MARGIN, "TYPE_FP32", np.float32, (-1,))]


def generate_router_outputs() -> list[TensorSpec]:
    """Outputs of a generating `elang` router: the answering stage's outputs, ENERGY (the policy's
    aggregate of Swift's token energies, what the threshold was compared with) and ROUTE."""
    return [
        *_generated(),
        TensorSpec(ENERGY, "TYPE_FP32", np.float32, (1,)),
        TensorSpec(ROUTE, "TYPE_INT32", np.int32, (1,)),
    ]


def is_router(model: str) -> bool:
    """`elang` and its variants (`elang_<super name>`) answer the router contract."""
    return model == ROUTER_MODEL or model.startswith(ROUTER_MODEL + "_")


def stage_index(model: str) -> int:
    """ROUTE value of a stage called directly: 0 for Swift (and its variants), 1 for any Super."""
    return ROUTE_SWIFT if model.startswith(SWIFT_MODEL) else ROUTE_SUPER
