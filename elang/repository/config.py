"""The one parser and renderer of ``config.pbtxt``: Triton's ``ModelConfig`` protobuf
(tritonclient's ``model_config_pb2``) in protobuf text format, for the whole project.

Parameters are ``map<string, ModelParameter>`` whose values are strings; :func:`parameters`
gives them as a plain dict, and :func:`json_parameters` does the same for the JSON form of a
config (what Triton hands a Python model's ``initialize`` and what the HTTP client returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from elang import contract as c
from elang.core.atomic import write_text
from elang.core.settings import format_stage_map, parse_stage_map
from elang.tasks import Task, task_from_parameters

CONFIG_FILE = "config.pbtxt"
ModelConfig = mc.ModelConfig


class RepositoryError(ValueError):
    """A model folder or setting cannot make a valid repository; the message says which."""


class ConfigError(ValueError):
    """A config.pbtxt that does not parse; the message names the file and the line."""


def render_config(config: mc.ModelConfig) -> str:
    """The config.pbtxt text of a ModelConfig."""
    return text_format.MessageToString(config)


def parse_config(text: str, where: str | Path | None = None) -> mc.ModelConfig:
    """Parse config.pbtxt text (``where``: the file, named in the error)."""
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        if where is None:
            raise
        raise ConfigError(f"{where}: not a valid Triton model config ({exc})") from None


def config_path(repo: Path, model: str) -> Path:
    return Path(repo) / model / CONFIG_FILE


def read_config(path: Path) -> mc.ModelConfig:
    """The ModelConfig in ``path`` (a config.pbtxt)."""
    return parse_config(Path(path).read_text(errors="replace"), path)


def model_config(repo: Path, model: str) -> mc.ModelConfig | None:
    """``model``'s config in repository ``repo``, or None when it holds no such model."""
    path = config_path(repo, model)
    return read_config(path) if path.is_file() else None


def write_config(path: Path, config: mc.ModelConfig) -> None:
    """Write ``config`` to ``path`` atomically (a running server never reads half a file)."""
    write_text(Path(path), render_config(config))


def parameters(config: mc.ModelConfig) -> dict[str, str]:
    """A config's ``parameters`` as {key: string value}."""
    return {k: v.string_value for k, v in config.parameters.items()}


def parameter(config: mc.ModelConfig, key: str, default: str = "") -> str:
    """One parameter's string value, or ``default`` when the config does not set it."""
    return config.parameters[key].string_value if key in config.parameters else default


def set_parameters(config: mc.ModelConfig, values: Mapping[str, Any]) -> None:
    """Set each ``values`` key as a string parameter (in place)."""
    for key, value in values.items():
        config.parameters[key].string_value = str(value)


def json_parameters(config: Mapping[str, Any]) -> dict[str, str]:
    """The ``parameters`` of a config in its JSON form as {key: string value}."""
    return {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}


def router_task(repo: Path, router: str = c.ROUTER_MODEL) -> Task | None:
    """The task repository ``repo``'s router ``router`` serves (None: no such router)."""
    config = model_config(repo, router)
    return None if config is None else task_from_parameters(parameters(config))


def check_family(repo: Path, task: Task) -> None:
    """Refuse to write ``task``'s models into a repository whose router serves another family
    (classifiers and generating stages never share a repository)."""
    existing = router_task(repo)
    if existing is not None and existing.family != task.family:
        raise RepositoryError(
            f"{repo} serves {existing.family} models (task {existing.name}); a repository holds one family: "
            f"export the {task.name} model into another repository"
        )


def stage_max_batches(repository: Path, stages: tuple[str, ...]) -> dict[str, int]:
    """``max_batch_size`` of each stage whose ``config.pbtxt`` ``repository`` holds (a top-level field)."""
    out = {}
    for name in stages:
        cfg = model_config(repository, name)
        if cfg is not None and cfg.max_batch_size > 0:
            out[name] = int(cfg.max_batch_size)
    return out


def stages_declare(
    repository: Path, stages: tuple[str, ...], output: str, remote_configs: Mapping[str, dict] | None = None
) -> bool:
    """Whether every stage's ``config.pbtxt`` in ``repository`` (or, for a stage on another
    server, its config there, JSON form: ``remote_configs``) declares the output ``output``."""
    for name in stages:
        cfg = model_config(repository, name)
        if cfg is None and name in (remote_configs or {}):
            if output not in {o.get("name") for o in remote_configs[name].get("output", [])}:
                return False
            continue
        if cfg is None or output not in {o.name for o in cfg.output}:
            return False
    return True


def stage_batch_limits(
    repository: Path, params: dict[str, str], remote_configs: Mapping[str, dict] | None = None
) -> dict[str, str]:
    """``stage_max_batch`` from the stages' own config.pbtxt where the repository holds them
    (and from ``remote_configs``, JSON form, for stages on other servers).

    The writer records each stage's ``max_batch_size`` in the router's parameters; a stage
    rewritten since (or by hand) is read here, so a call never exceeds what the stage accepts.
    """
    stages = c.parse_stages(params.get(c.PARAM_STAGES))
    try:
        limits = parse_stage_map(params, c.PARAM_STAGE_MAX_BATCH, stages)
    except ValueError:
        return {}  # RouterSettings reports it
    for name, cfg in (remote_configs or {}).items():
        if name in stages and int(cfg.get("max_batch_size", 0) or 0) > 0:
            limits[name] = int(cfg["max_batch_size"])
    limits.update(stage_max_batches(repository, stages))
    return {c.PARAM_STAGE_MAX_BATCH: format_stage_map(limits)} if limits else {}
