"""The task registry: what the router serves, one object per task, consulted everywhere a task differs.

A task (``classify``: a Swift/Super pair of classifiers; ``exits``: the exits of one multi-exit
encoder; ``generate``: seq2seq stages routed on token energies) declares its stages' kind and
tensors, the routing policies it takes, how the router calls its stages and builds its answers,
its calibration criteria and metric, the module of its stages' Triton adapter, and its CLI
defaults (:class:`elang.tasks.base.Task`). The routing core, the repository writer, calibrate,
bench, the client and the CLI ask the task instead of branching on its name.

A new task is one module with a ``Task`` subclass and one :func:`register` call (docs/ARCHITECTURE.md,
"Adding a task"). numpy only, like the rest of the serving core.
"""

from __future__ import annotations

from collections.abc import Mapping

from elang import contract as c
from elang.tasks.base import Task

_REGISTRY: dict[str, Task] = {}


def register(task: Task, replace: bool = False) -> Task:
    """Add ``task`` under ``task.name``; a second task of the same name is refused unless ``replace``."""
    if not task.name or not task.name.isidentifier():
        raise ValueError(f"a task needs a plain identifier for a name, got {task.name!r}")
    if task.name in _REGISTRY and not replace:
        raise ValueError(f"task {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


def unregister(name: str) -> None:
    """Remove a task (tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def task_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def resolve_task_name(name: str, has_exit_layers: bool) -> str:
    """A router's task name. Routers written before the ``exits`` task existed say ``classify``
    (or nothing) and name their ``exit_layers``: they are ``exits``."""
    name = (name or "").strip() or c.TASK_CLASSIFY
    return c.TASK_EXITS if name == c.TASK_CLASSIFY and has_exit_layers else name


def task_from_parameters(params: Mapping[str, str]) -> Task:
    """The task of a router from its config parameters (see :func:`resolve_task_name`)."""
    layers = bool((params.get(c.PARAM_EXIT_LAYERS) or "").strip())
    return get_task(resolve_task_name(params.get(c.PARAM_TASK) or "", layers))


def _builtin() -> None:
    from elang.tasks.classify import ClassifyTask
    from elang.tasks.exits import ExitsTask
    from elang.tasks.generate import GenerateTask

    for task in (ClassifyTask(), ExitsTask(), GenerateTask()):
        register(task)


_builtin()
