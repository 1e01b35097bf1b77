"""The one calibration record of every task, and the one ``apply`` that writes it into a router.

A record is a common part, what every router's calibration is:

* ``task``, ``router``, ``version`` (what the router's ``calibration_version`` names);
* ``criterion`` (the policy), ``thresholds`` (one per step), ``temperatures`` (one, or one per stage);
* ``target`` (kind and value), ``confidence`` and ``certificate`` (the held-out statistics and the
  certified bound behind the threshold);
* ``stage_hashes`` (the stages' fingerprints when it was applied: a later re-export makes it
  stale, ``elang.repository.fingerprint``), ``dataset`` (the data's fingerprint), ``created``,
  ``warnings``;

plus ``payload``: what the task's calibration adds (the pair's criteria table, costs and
learned rule; the exits' candidates; the seq2seq aggregators). Each task's calibration module
builds its own record type and turns it into this one (``to_record``).

``calibration.json`` files written before this record existed (schema 1 and 2 of the pair,
the multi-exit and the seq2seq records) still load: :func:`read_record` lifts them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elang import contract as c
from elang.core.atomic import write_text
from elang.core.routing import LEARNED, DeferralRule, Policy, get_policy, learned_policy
from elang.core.settings import RouterSettings
from elang.repository.config import config_path, parameters, read_config, render_config, set_parameters
from elang.repository.fingerprint import stage_hashes

RECORD_FILE = "calibration.json"
SCHEMA = 3


class RecordError(ValueError):
    """A calibration record that cannot be read or applied; the message says how to recalibrate."""


@dataclass
class Record:
    task: str
    router: str
    version: str
    criterion: str
    thresholds: list[float]
    temperatures: list[float]
    target: dict
    confidence: float | None
    certificate: dict
    dataset: str
    created: str
    payload: dict = field(default_factory=dict)
    stage_hashes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    schema: int = SCHEMA

    def router_values(self) -> dict[str, str]:
        """The router parameters this record sets."""
        return {
            c.PARAM_POLICY: self.criterion,
            c.PARAM_THRESHOLD: ",".join(repr(float(t)) for t in self.thresholds),
            c.PARAM_TEMPERATURE: ",".join(repr(float(t)) for t in self.temperatures),
            c.PARAM_CALIBRATION_VERSION: self.version,
        }

    def to_json(self) -> str:
        d = asdict(self)
        d["thresholds"] = [repr(float(t)) for t in self.thresholds]  # keeps inf and full precision
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str = "calibration record") -> Record:
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"{where}: not JSON ({exc}); {RECALIBRATE}") from None
        if not isinstance(d, dict):
            raise RecordError(f"{where}: not a calibration record (a JSON object); {RECALIBRATE}")
        if d.get("schema") != SCHEMA or "payload" not in d:
            return _lift(d, where)
        try:
            d["thresholds"] = [float(t) for t in d["thresholds"]]
            return cls(**d)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{where}: a malformed calibration record ({exc}); {RECALIBRATE}") from None


RECALIBRATE = "run elang calibrate ... --apply again to write a fresh one"


def _lift_exits(d: dict) -> Record:  # the multi-exit record (schema 1, "kind": "multi-exit")
    steps = len(d["exit_layers"]) - 1
    return Record(
        c.TASK_EXITS, d["router"], d["version"], d["policy"], [float(d["threshold"])] * steps,
        list(d["temperatures"]), d["target"], d.get("confidence"), d.get("calibration", {}),
        d.get("dataset", ""), d.get("created", ""), payload=d, warnings=d.get("warnings", []),
    )  # fmt: skip


def _lift_generate(d: dict) -> Record:  # the seq2seq record ("task": "generate")
    return Record(
        c.TASK_GENERATE, c.ROUTER_MODEL, d["version"], d["criterion"], [float(d["threshold"])],
        [float(d.get("temperature", 1.0))], d["target"], d.get("calibration", {}).get("confidence"),
        d.get("calibration", {}), d.get("data_fingerprint", ""), d.get("created", ""), payload=d,
    )  # fmt: skip


def _lift_classify(d: dict) -> Record:  # the pair's record (schema 1 or 2)
    if "criterion" not in d:
        raise KeyError("criterion")
    return Record(
        c.TASK_CLASSIFY, c.ROUTER_MODEL, d["version"], d["criterion"], [float(d["threshold"])],
        [float(d.get("temperature", 1.0))], d.get("target", {}), d.get("confidence"),
        d.get("calibration", d.get("validation", {})), d.get("dataset", ""), d.get("created", ""),
        payload=d, warnings=d.get("warnings", []),
    )  # fmt: skip


# How a record written before the common one says what it is: a "kind" (exits), a "task" (seq2seq),
# or neither (the pair's).
_LIFTERS = {"multi-exit": _lift_exits, c.TASK_GENERATE: _lift_generate, "": _lift_classify}


def _lift(d: dict, where: str) -> Record:
    """A record written before the common record (its task's own flat layout)."""
    lift = _LIFTERS.get(d.get("kind") or d.get("task") or "")
    try:
        if lift is None:
            raise KeyError("a known kind")
        return lift(d)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(
            f"{where}: not a calibration record this version reads (schema {d.get('schema')!r}, lacks {exc}); "
            f"{RECALIBRATE}"
        ) from None


def read_record(router_dir: Path) -> Record | None:
    """The record applied to the router in ``router_dir`` (None: uncalibrated)."""
    path = Path(router_dir) / RECORD_FILE
    return Record.from_json(path.read_text(), str(path)) if path.is_file() else None


def apply_record(repository: Path, record: Record) -> Path:
    """Write ``record`` into its router: the parameters it sets (checked as the router would), the
    stages' fingerprints, and the record next to the config: the record first, so a reload that
    sees the new threshold also finds the record behind it. One apply for every task."""
    repository = Path(repository)
    path = config_path(repository, record.router)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {repository} has no {record.router} router")
    cfg = read_config(path)
    set_parameters(cfg, record.router_values())
    try:
        settings = RouterSettings.from_parameters(parameters(cfg))
    except ValueError as exc:
        raise RecordError(f"the record does not fit router {record.router}: {exc}") from None
    if settings.task != record.task:
        raise RecordError(f"a {record.task} calibration cannot be applied to {record.router}, a {settings.task} router")
    # Which models this calibration was made on: a later re-export makes it stale.
    hashes = stage_hashes(repository, settings.stages)
    record.stage_hashes = dict(item.split("=", 1) for item in hashes.split(",") if "=" in item)
    set_parameters(cfg, {c.PARAM_STAGE_HASHES: hashes})
    write_text(path.parent / RECORD_FILE, record.to_json())
    write_text(path, render_config(cfg))
    return path


def router_policy(settings: RouterSettings, router_dir: Path | None) -> Policy:
    """The router's policy; ``learned`` rebuilds its rule from the applied record."""
    if settings.policy != LEARNED:
        return get_policy(settings.policy)
    path = Path(router_dir or ".") / RECORD_FILE
    if not path.is_file():
        raise ValueError(f"policy learned needs {path} (written by elang calibrate --apply)")
    record = Record.from_json(path.read_text(), str(path))
    if record.version != settings.calibration_version:
        raise ValueError(
            f"{path} holds calibration {record.version!r} but the config names {settings.calibration_version!r}"
        )
    rule = record.payload.get("rule")
    if not rule:
        raise ValueError(f"{path} holds no learned rule")
    return learned_policy(DeferralRule.from_dict(rule))
