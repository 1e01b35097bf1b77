"""What every task declares (``Task``), with the defaults a cascade of whole classifiers uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.core.execution import Job, StageOutput
from elang.core.routing import parse_thresholds


class Task:
    """One kind of cascade. Subclasses override what differs; every hook gets the router's
    ``RouterSettings`` (``elang.core.settings``), never a task name to branch on."""

    name: str = ""
    description: str = ""
    # Which Triton adapter its stages run (the writer's model.py imports it).
    stage_adapter: str = "elang.triton.classifier_model"
    # What calibrate and bench report: "accuracy" (higher is better) or "wer" (lower is better).
    metric: str = "accuracy"
    # Routing criteria calibrate compares for this task (``elang calibrate --criterion``, its --help).
    criteria: tuple[str, ...] = ()
    default_criterion: str = ""
    # calibrate's --criterion auto: pick, among ``criteria``, the one that meets the target with the least Super.
    auto_criterion: bool = True
    # Tasks of one family share a repository (a pair and the exits of its Super); families do not.
    family: str = "classification"
    # What `elang calibrate` runs for a router of this task ("module:function" of the CLI, taking
    # the parsed arguments).
    calibrate_command: str = "elang.cli.calibrate:run_pair"
    # The policy a router gets when its config names none.
    default_policy: str = "energy"
    # The executor updates a row's score at every stage it reaches (a multi-exit router answers
    # SCORE at the exit that answered); False keeps the first stage's (a generating router's ENERGY).
    keep_scores: bool = False
    # Which stages a router of this task runs in its own process when it can (the writer's
    # default, ``elang tune --inline on``): "first" (the Swift of a pair) or "all".
    inline_default: str = "first"

    # --- policies ----------------------------------------------------------------------------------
    def accepts_policy(self, policy: str) -> bool:
        return policy in self.criteria

    def policy_kind(self) -> str:
        """How an error names the policies this task takes."""
        return ", ".join(self.criteria)

    # --- router settings ---------------------------------------------------------------------------
    def validate(self, settings: Any) -> None:
        """Refuse settings this task cannot serve (raise ValueError naming the field)."""
        if not self.accepts_policy(settings.policy):
            raise ValueError(f"a {self.name} router needs {self.policy_kind()}, got policy {settings.policy!r}")

    def route_names(self, settings: Any) -> tuple[str, ...]:
        """What each ROUTE value means, in order (the stages by default)."""
        return tuple(settings.stages)

    def request_thresholds(self, settings: Any, raw: Any) -> list[float]:
        """The thresholds a request's ``elang_threshold`` asks for (raises ValueError)."""
        return parse_thresholds(raw, len(settings.stages) - 1)

    def job_inputs(self, settings: Any, params: Mapping[str, Any], rows: int) -> dict[str, np.ndarray] | None:
        """Per-row inputs a job carries besides its texts (read from the request's parameters)."""
        return None

    # --- calling stages and answering ----------------------------------------------------------------
    def stage_call(self, settings: Any, model: str, inputs: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        """The tensors of one call to stage ``model`` and the outputs it asks for."""
        return {c.TEXT: inputs}, [c.LOGITS]

    def stage_answer(self, settings: Any, outs: Mapping[str, np.ndarray]) -> np.ndarray | StageOutput:
        """What a stage's output tensors mean to the execution model."""
        if len(outs) == 1:
            return outs[c.LOGITS]
        return StageOutput(outs[c.LOGITS], {n: v for n, v in outs.items() if n != c.LOGITS})

    def outputs(self, settings: Any, job: Job) -> dict[str, np.ndarray]:
        """The router's output tensors for a job that finished without failure."""
        raise NotImplementedError

    def router_outputs(self, num_labels: int) -> list[c.TensorSpec]:
        """The router's outputs in the contract (its config.pbtxt)."""
        raise NotImplementedError

    # --- the in-process first stage --------------------------------------------------------------------
    def inline_stage(self, folder: Path, params: Mapping[str, str], settings: Any) -> Callable[[Any], Any]:
        """A callable from the first stage's inputs to its answer, run in the router's process."""
        raise ValueError(f"a {self.name} router cannot run its first stage in process")

    def __repr__(self) -> str:
        return f"<task {self.name}>"
