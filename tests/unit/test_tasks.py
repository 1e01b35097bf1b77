"""The task registry: built-in tasks, their hooks, and a toy fourth task registered from a test
(no core module edited) routed through the real execution model."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from elang import contract as c
from elang.core.execution import CascadeExecutor, Job
from elang.core.routing import get_policy
from elang.core.settings import RouterSettings
from elang.core.texts import encode_texts
from elang.tasks import get_task, register, task_from_parameters, task_names, unregister
from elang.tasks.base import Task


def test_the_three_tasks_are_registered_with_their_criteria_and_metrics():
    assert {"classify", "exits", "generate"} <= set(task_names())
    assert get_task("classify").criteria == ("energy", "softmax", "entropy", "learned")
    assert get_task("generate").metric == "wer" and get_task("classify").metric == "accuracy"
    assert get_task("exits").stage_adapter == "elang.triton.segment_model"
    with pytest.raises(ValueError, match="unknown task 'nope'; known: .*classify"):
        get_task("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(get_task("classify"))


def test_routers_written_before_the_exits_task_resolve_to_it():
    assert task_from_parameters({}).name == "classify"
    assert task_from_parameters({c.PARAM_EXIT_LAYERS: "2,4"}).name == "exits"
    assert task_from_parameters({c.PARAM_TASK: "exits"}).name == "exits"
    s = RouterSettings(stages=("a", "b"), policy="softmax", thresholds=(0.5,), exit_layers=(2, 4))
    assert s.task == "exits" and s.spec.route_names(s) == ("exit 2", "exit 4")
    assert s.request_thresholds({c.THRESHOLD_PARAM: 0.7}) == [0.7]  # one number for every exit


def test_each_task_refuses_the_policies_of_another():
    with pytest.raises(ValueError, match="aggregate of token energies"):
        RouterSettings(task="generate", policy="energy", max_new_tokens=4)
    with pytest.raises(ValueError, match="classifier policy"):
        RouterSettings(policy="mean")
    with pytest.raises(ValueError, match="exit policy"):
        RouterSettings(stages=("a", "b"), policy="learned", exit_layers=(2, 4))


class LengthTask(Task):
    """A toy task: each stage answers one 'logit' row; the router answers the text's length
    as seen by the stage that answered, and which stage that was."""

    name = "lengths"
    criteria = ("energy",)
    default_policy = "energy"

    def stage_call(self, settings: Any, model: str, inputs: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        return {c.TEXT: inputs}, ["LENGTH"]

    def stage_answer(self, settings: Any, outs: Mapping[str, np.ndarray]) -> np.ndarray:
        return outs["LENGTH"]

    def outputs(self, settings: Any, job: Job) -> dict[str, np.ndarray]:
        return {"LENGTH": job.logits[:, :1].copy(), c.ROUTE: job.route.astype(np.int32).reshape(job.n, 1)}


@pytest.fixture
def toy_task():
    task = register(LengthTask())
    yield task
    unregister(task.name)


def test_a_toy_fourth_task_routes_through_the_executor(toy_task):
    settings = RouterSettings.from_parameters({c.PARAM_TASK: "lengths", c.PARAM_STAGES: "small,big", "threshold": "-5"})
    assert settings.spec is toy_task and settings.policy == "energy"
    stages = {
        # small is sure (energy -20) about short texts, unsure (energy ~ -0.7) about long ones
        "small": lambda t: np.array([[20.0, 0.0] if len(x[0]) < 5 else [0.0, 0.0] for x in t], np.float32),
        "big": lambda t: np.array([[100.0 + len(x[0]), 0.0] for x in t], np.float32),
    }
    calls: list[tuple[str, int]] = []
    done: list[Job] = []
    got = threading.Event()

    async def call_stage(model: str, inputs: Any, timeout_s: float) -> Any:
        tensors, wanted = settings.spec.stage_call(settings, model, inputs)
        calls.append((model, len(tensors[c.TEXT])))
        return settings.spec.stage_answer(settings, {wanted[0]: stages[model](tensors[c.TEXT])})

    def reply(job: Job) -> None:
        done.append(job)
        got.set()

    ex = CascadeExecutor(settings.stage_limits(), get_policy(settings.policy), call_stage, reply)
    try:
        job = Job(encode_texts(["hi", "a long text", "ok"]), list(settings.thresholds))
        assert ex.run([job]) == [False], job.failure  # one row escalated: answered later
        assert got.wait(5)
        out = settings.spec.outputs(settings, done[0])
        assert out[c.ROUTE].ravel().tolist() == [0, 1, 0]
        assert out["LENGTH"].ravel().tolist() == [20.0, 111.0, 20.0]
        assert calls == [("small", 3), ("big", 1)]  # only the unsure row went on
    finally:
        ex.close()
