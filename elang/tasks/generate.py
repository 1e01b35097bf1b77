"""``generate``: seq2seq stages (T5 and kin), routed on an aggregate of the Swift's token energies.

Each stage takes TEXT and an optional per-row MAX_NEW_TOKENS and answers OUTPUT_TEXT,
TOKEN_IDS, TOKEN_ENERGY, NUM_TOKENS and TOKEN_MARGIN (where its config declares it); the router
answers those of the stage that answered (TOKEN_MARGIN aside), ENERGY (the Swift's aggregate,
the routed score) and ROUTE. The executor's "logits" of a row are its token energies and
margins, [steps, 2], padded with NaN to the router's ``max_new_tokens``
(``elang.core.routing.token_channels``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.execution import Job, StageOutput
from elang.core.routing import LEARNED, SEQUENCE_POLICIES, get_policy, is_sequence_policy, stack_tokens
from elang.core.texts import InputError, decode_texts
from elang.runtimes.generator import OnnxSeq2SeqGenerator, generator_options  # onnxruntime: serve extra
from elang.tasks.base import Task


def pad_steps(values: np.ndarray, width: int, fill: float | int) -> np.ndarray:
    """``values`` [rows, steps] right-padded (or cut) to ``width`` steps with ``fill``."""
    v = np.asarray(values)
    if v.ndim != 2:
        raise ValueError(f"expected [rows, steps], got shape {list(v.shape)}")
    if v.shape[1] >= width:
        return v[:, :width]
    return np.pad(v, [(0, 0), (0, width - v.shape[1])], constant_values=fill)


def request_max_new_tokens(settings: Any, params: Mapping[str, Any]) -> int:
    """This request's cap on new tokens: the router's, or the smaller ``max_new_tokens`` it asks for."""
    if c.MAX_NEW_TOKENS_PARAM not in params:
        return settings.max_new_tokens
    raw = params[c.MAX_NEW_TOKENS_PARAM]
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(raw)
        if value != float(raw):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"request parameter {c.MAX_NEW_TOKENS_PARAM} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise InputError(f"request parameter {c.MAX_NEW_TOKENS_PARAM} must be >= 1, got {value}")
    return min(value, settings.max_new_tokens)


class GenerateTask(Task):
    name = c.TASK_GENERATE
    description = "seq2seq stages: OUTPUT_TEXT, TOKEN_IDS, TOKEN_ENERGY, NUM_TOKENS, ENERGY, ROUTE"
    stage_adapter = "elang.triton.generator_model"
    metric = "wer"
    criteria = (*SEQUENCE_POLICIES, "quantile:Q", LEARNED)
    default_criterion = "auto"
    default_policy = "mean"
    family = "generation"
    calibrate_command = "elang.cli.calibrate_generate:run"

    def accepts_policy(self, policy: str) -> bool:
        return is_sequence_policy(policy) or policy == LEARNED

    def policy_kind(self) -> str:
        return (
            "an aggregate of token energies (first, mean, max, sum, quantile:Q), min-margin, or learned "
            "(a rule on token scores fitted by elang calibrate)"
        )

    def validate(self, settings: Any) -> None:
        super().validate(settings)
        if settings.max_new_tokens < 1 or settings.exit_layers:
            raise ValueError(
                f"a generate router needs max_new_tokens >= 1 (got {settings.max_new_tokens}) and no exit_layers"
            )
        # (calibrate gives a learned rule margin features only where every stage declares TOKEN_MARGIN)
        margins = settings.policy != LEARNED and getattr(get_policy(settings.policy), "needs_margins", False)
        if margins and settings.stage_margins is False:
            raise ValueError(
                f"policy {settings.policy} scores each token's probability margin, and not every stage's "
                f"config declares {c.TOKEN_MARGIN} (stages {', '.join(settings.stages)}): export the stages "
                "again with this version of elang, or calibrate another policy"
            )

    def job_inputs(self, settings: Any, params: Mapping[str, Any], rows: int) -> dict[str, np.ndarray] | None:
        return {c.MAX_NEW_TOKENS: np.full(rows, request_max_new_tokens(settings, params), np.int32)}

    def stage_call(self, settings: Any, model: str, inputs: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        caps = np.asarray(inputs[c.MAX_NEW_TOKENS], dtype=np.int32).reshape(-1, 1)
        # Margins from every stage but the last: only the stages whose answer the policy scores
        scored = settings.stage_margins and model != settings.stages[-1]
        names = [t.name for t in c.generator_outputs() if t.name != c.TOKEN_MARGIN or scored]
        return {c.TEXT: inputs[c.TEXT], c.MAX_NEW_TOKENS: caps}, names

    def stage_answer(self, settings: Any, outs: Mapping[str, np.ndarray]) -> StageOutput:
        cap = settings.max_new_tokens
        margins = outs.get(c.TOKEN_MARGIN)
        return StageOutput(
            stack_tokens(
                pad_steps(outs[c.TOKEN_ENERGY], cap, np.nan),
                None if margins is None else pad_steps(margins, cap, np.nan),
            ),
            outputs={
                c.OUTPUT_TEXT: np.asarray(outs[c.OUTPUT_TEXT], dtype=np.object_).reshape(-1),
                c.TOKEN_IDS: pad_steps(outs[c.TOKEN_IDS], cap, 0).astype(np.int64),
                c.NUM_TOKENS: np.asarray(outs[c.NUM_TOKENS], dtype=np.int32).reshape(-1),
            },
        )

    def outputs(self, settings: Any, job: Job) -> dict[str, np.ndarray]:
        """The answering stage's text, token ids and token energies (cut to the job's longest
        answer), ENERGY (Swift's aggregate, the routed score) and ROUTE."""
        n = job.n
        outs = job.outputs or {}
        lengths = np.asarray(outs.get(c.NUM_TOKENS, np.zeros((n, 1))), dtype=np.int32).reshape(n, 1)
        width = max(1, int(lengths.max(initial=0)))
        texts = np.asarray(outs.get(c.OUTPUT_TEXT, np.full(n, b"", dtype=np.object_)), dtype=np.object_)
        return {
            c.OUTPUT_TEXT: texts.reshape(n, 1),
            c.TOKEN_IDS: np.ascontiguousarray(np.asarray(outs[c.TOKEN_IDS], dtype=np.int64)[:, :width]),
            c.TOKEN_ENERGY: np.ascontiguousarray(job.logits[:, :width, 0], dtype=np.float32),
            c.NUM_TOKENS: lengths,
            c.ENERGY: job.scores.astype(np.float32).reshape(n, 1),
            c.ROUTE: job.route.astype(np.int32).reshape(n, 1),
        }

    def router_outputs(self, num_labels: int) -> list[c.TensorSpec]:
        return c.generate_router_outputs()

    def inline_stage(self, folder: Path, params: Mapping[str, str], settings: Any) -> Callable[[Any], Any]:

        generator = OnnxSeq2SeqGenerator(folder, **generator_options(params))
        max_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, settings.max_text_bytes))

        def generate(inputs: dict[str, np.ndarray]) -> Any:
            texts = decode_texts(inputs[c.TEXT], max_bytes)
            caps = np.minimum(
                np.asarray(inputs[c.MAX_NEW_TOKENS], dtype=np.int64).reshape(-1), generator.max_new_tokens
            )
            return self.stage_answer(settings, generator(texts, caps, margins=bool(settings.stage_margins)).tensors())

        return generate
