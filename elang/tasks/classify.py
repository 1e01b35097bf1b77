"""``classify``: a cascade of whole classifiers (E-LANG's Swift/Super pair, or more stages).

Each stage takes TEXT and answers LOGITS; the router answers LABEL, LOGITS (of the stage that
answered), ENERGY (the first stage's, at its temperature) and ROUTE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.execution import Job, StageOutput
from elang.core.routing import LEARNED, POLICY_NAMES, STATELESS, energy
from elang.core.texts import decode_texts
from elang.runtimes.classifier import OnnxTextClassifier, classifier_options  # onnxruntime: serve extra
from elang.tasks.base import Task


def classifier_outputs(job: Job, temperature: float) -> dict[str, np.ndarray]:
    """LABEL, LOGITS, ENERGY and ROUTE of a finished classifier job."""
    n = job.n
    out = {
        c.LABEL: np.argmax(job.logits, axis=1).astype(np.int64).reshape(n, 1),
        c.LOGITS: np.ascontiguousarray(job.logits, dtype=np.float32),
        c.ENERGY: energy(job.first_logits, temperature).astype(np.float32).reshape(n, 1),
        c.ROUTE: job.route.astype(np.int32).reshape(n, 1),
    }
    if job.outputs and c.TRUNCATED in job.outputs:  # the answering stage's flag
        out[c.TRUNCATED] = job.outputs[c.TRUNCATED].astype(np.bool_).reshape(n, 1)
    return out


def load_classifier_inline(folder: Path, params: Mapping[str, str], settings: Any) -> Callable[[Any], Any]:
    """A python-ort classifier stage's copy, run in the router's process."""

    classifier = OnnxTextClassifier(folder, **classifier_options(params))
    if not settings.report_truncation:
        return lambda texts: classifier(decode_texts(texts, settings.max_text_bytes))

    def run(texts: Any) -> StageOutput:
        logits, cut = classifier.classify(decode_texts(texts, settings.max_text_bytes))
        return StageOutput(logits, outputs={c.TRUNCATED: cut.reshape(-1, 1)})

    return run


class ClassifyTask(Task):
    name = c.TASK_CLASSIFY
    description = "a cascade of whole classifiers (Swift -> Super): LABEL, LOGITS, ENERGY, ROUTE"
    stage_adapter = "elang.triton.classifier_model"
    metric = "accuracy"
    criteria = (*STATELESS, LEARNED)
    default_criterion = "energy"
    default_policy = "energy"

    def accepts_policy(self, policy: str) -> bool:
        return policy in POLICY_NAMES

    def policy_kind(self) -> str:
        return f"a classifier policy ({', '.join(POLICY_NAMES)})"

    def validate(self, settings: Any) -> None:
        super().validate(settings)
        if settings.exit_layers:
            raise ValueError("a classify router has no exit_layers (a multi-exit router is task exits)")
        if settings.policy == LEARNED and len(settings.stages) != 2:
            raise ValueError(
                f"the learned policy is fitted on one Swift/Super pair; {len(settings.stages)} stages given"
            )

    def stage_call(self, settings: Any, model: str, inputs: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        return {c.TEXT: inputs}, [c.LOGITS, c.TRUNCATED] if settings.report_truncation else [c.LOGITS]

    def stage_answer(self, settings: Any, outs: Any) -> np.ndarray | StageOutput:
        # A whole classifier's extra outputs (TRUNCATED) are per-row results, never a carry for the next stage.
        if len(outs) == 1:
            return outs[c.LOGITS]
        return StageOutput(outs[c.LOGITS], outputs={n: v for n, v in outs.items() if n != c.LOGITS})

    def outputs(self, settings: Any, job: Job) -> dict[str, np.ndarray]:
        return classifier_outputs(job, settings.temperature)

    def router_outputs(self, num_labels: int) -> list[c.TensorSpec]:
        return c.router_outputs(num_labels)

    def inline_stage(self, folder: Path, params: Mapping[str, str], settings: Any) -> Callable[[Any], Any]:
        return load_classifier_inline(folder, params, settings)
