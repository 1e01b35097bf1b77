"""``exits``: the exits of one multi-exit encoder (Right Tool, DeeBERT, PABEE, COST-EFF).

Each stage is a segment of the encoder that ends at an exit: the first takes TEXT and answers
LOGITS, HIDDEN and MASK; a later one takes HIDDEN and MASK and hands its hidden state on (the
last answers LOGITS only). The router answers the classifier outputs plus EXIT (the layer that
answered) and SCORE (the policy's score there); one threshold serves every exit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.execution import Job
from elang.core.routing import parse_thresholds
from elang.core.texts import decode_texts
from elang.tasks.base import Task
from elang.tasks.classify import classifier_outputs


class ExitsTask(Task):
    name = c.TASK_EXITS
    description = "exits of one multi-exit encoder (segments): LABEL, LOGITS, ENERGY, ROUTE, EXIT, SCORE"
    stage_adapter = "elang.triton.segment_model"
    metric = "accuracy"
    criteria = ("softmax", "entropy", "energy", "patience")
    default_criterion = "softmax"  # the Right Tool's
    auto_criterion = False
    default_policy = "softmax"
    keep_scores = True
    calibrate_command = "elang.cli.calibrate_exits:run"
    # Every segment runs in the router's process by default: hidden states never cross a process.
    inline_default = "all"

    def policy_kind(self) -> str:
        return f"an exit policy ({', '.join(self.criteria)})"

    def validate(self, settings: Any) -> None:
        super().validate(settings)
        layers = list(settings.exit_layers)
        if len(layers) != len(settings.stages) or layers != sorted(set(layers)):
            raise ValueError(
                f"exit_layers must give one increasing layer per stage ({len(settings.stages)}), got {layers}"
            )

    def route_names(self, settings: Any) -> tuple[str, ...]:
        return tuple(f"exit {layer}" for layer in settings.exit_layers)

    def request_thresholds(self, settings: Any, raw: Any) -> list[float]:
        steps = len(settings.stages) - 1
        if isinstance(raw, str) and "," in raw:
            return parse_thresholds(raw, steps)
        return parse_thresholds(raw, 1) * steps  # Right Tool's single threshold for every exit

    def stage_call(self, settings: Any, model: str, inputs: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        carried = isinstance(inputs, dict)  # a segment after the first: the previous segment's state
        tensors = dict(inputs) if carried else {c.TEXT: inputs}
        wanted = [c.LOGITS]
        if model != settings.stages[-1]:
            wanted += [c.HIDDEN] if carried else [c.HIDDEN, c.MASK]
        return tensors, wanted

    def outputs(self, settings: Any, job: Job) -> dict[str, np.ndarray]:
        out = classifier_outputs(job, settings.temperature)
        out[c.EXIT] = np.asarray(settings.exit_layers, dtype=np.int32)[job.route].reshape(job.n, 1)
        out[c.SCORE] = job.scores.astype(np.float32).reshape(job.n, 1)
        return out

    def router_outputs(self, num_labels: int) -> list[c.TensorSpec]:
        return c.exit_router_outputs(num_labels)

    def inline_stage(self, folder: Path, params: Mapping[str, str], settings: Any) -> Callable[[Any], Any]:
        from elang.runtimes.classifier import classifier_options  # onnxruntime: serve extra
        from elang.runtimes.segments import Segment

        opts = classifier_options(params)
        opts.pop("length_bucket")
        segment = Segment(folder, **opts)
        if segment.info.first:
            return lambda texts: segment(decode_texts(texts, settings.max_text_bytes))
        return segment
