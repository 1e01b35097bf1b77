"""Calibration of a multi-exit router: one threshold for every exit, chosen to a target with
the same statistical margin as the pair's (``elang.calibration.thresholds``).

The calibration split is cut as for the pair (:func:`elang.calibration.classify.split_for_fitting`): a
seeded third fits each exit's temperature and places the candidate thresholds; the other two
thirds choose and certify one. Every candidate is replayed with
:func:`elang.core.routing.cascade_offline`, the same decisions the router makes.

Targets:

* ``accuracy_drop`` (points below the last exit, paired per text) and ``accuracy``: certified
  by fixed-sequence testing from the safest threshold (every text to the last exit) towards
  cheaper ones; the cheapest one that passes is kept;
* ``mean_exit_layer`` (the average layer that answers) and ``compute_budget`` (the average
  share of the full model's layers that run): tested from the cheapest threshold towards
  safer ones; the most accurate one whose cost bound passes is kept.

With ``confidence`` None the point estimate on the held-out part decides (no guarantee).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.calibration.classify import TEMPERATURE_BOUNDS, served_engine, split_for_fitting
from elang.calibration.record import Record
from elang.calibration.record import apply_record as apply_common
from elang.calibration.thresholds import TargetError, clt_p_values, fit_temperature, fixed_sequence
from elang.core.identity import file_identity
from elang.core.routing import Policy, cascade_offline, get_policy
from elang.core.settings import RouterSettings
from elang.repository.config import parameters
from elang.repository.writer import parse_config
from elang.runtimes.segments import Segment, SegmentInfo, all_exit_logits

log = logging.getLogger(__name__)

EXIT_TARGETS = ("accuracy", "accuracy_drop", "mean_exit_layer", "compute_budget")
EXIT_POLICIES = ("softmax", "entropy", "energy", "patience")
EXIT_RECORD_SCHEMA = 1


@dataclass(frozen=True)
class ExitRouter:
    """What calibration needs to know of a multi-exit router in a repository."""

    name: str
    stages: tuple[str, ...]
    layers: tuple[int, ...]
    layers_total: int
    folders: tuple[Path, ...]  # each stage's version folder (a segment)
    max_length: int
    flops_share: tuple[float, ...] = ()  # per exit, of the full model's FLOPs (docs/EXITS.md); () = layer share

    def compute_share(self) -> np.ndarray:
        """Per exit: the compute of answering there, as a share of the full model."""
        if self.flops_share and all(f > 0 for f in self.flops_share):
            return np.asarray(self.flops_share, dtype=np.float64)
        return np.asarray(self.layers, dtype=np.float64) / self.layers_total

    @classmethod
    def read(cls, repository: Path, router: str) -> ExitRouter:

        cfg_path = Path(repository) / router / "config.pbtxt"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path} not found: {repository} has no router {router}")
        params = parameters(parse_config(cfg_path.read_text()))
        settings = RouterSettings.from_parameters(params)
        if settings.task != c.TASK_EXITS:
            raise ValueError(f"{router} is not a multi-exit router (task {settings.task}, no {c.PARAM_EXIT_LAYERS})")
        folders = tuple(Path(repository) / s / "1" for s in settings.stages)
        stage_cfg = parse_config((Path(repository) / settings.stages[0] / "config.pbtxt").read_text())
        max_length = int(stage_cfg.parameters[c.PARAM_MAX_LENGTH].string_value or c.DEFAULT_MAX_LENGTH)
        infos = [SegmentInfo.read(f) for f in folders]
        shares = tuple(i.flops_share for i in infos)
        return cls(router, settings.stages, settings.exit_layers, infos[-1].layers_total, folders, max_length, shares)


def exit_logits(router: ExitRouter, split_name: str, ds, fingerprint: str, cache_dir: Path) -> np.ndarray:  # noqa: ANN001
    """Every exit's logits [texts, exits, labels] on one split, cached per (model, exit layer, split): the
    exits of one checkpoint served at other cuts (E-LANG over its own exits) reuse them."""

    infos = [SegmentInfo.read(f) for f in router.folders]
    engines = [served_engine(f.parent.parent, f.parent.name) for f in router.folders]
    paths = []
    for info, folder, served in zip(infos, router.folders, engines, strict=True):
        source = info.source or file_identity(folder / "model.onnx").hex()[:16]
        tag = "" if served == ("onnxruntime", "fp32") else "|" + "/".join(served)
        key = hashlib.sha256(f"{fingerprint}|{split_name}|{len(ds)}|{router.max_length}|{source}{tag}".encode())
        paths.append(Path(cache_dir) / "scores" / f"exit{info.end}-{split_name}-{key.hexdigest()[:16]}.npy")
    if all(p.is_file() for p in paths):
        return np.stack([np.load(p) for p in paths], axis=1)
    log.info("running %s's %d segments on %d %s texts", router.name, len(infos), len(ds), split_name)
    segs = [
        Segment(f, max_length=router.max_length, engine=e, precision=p)
        for f, (e, p) in zip(router.folders, engines, strict=True)
    ]
    z = all_exit_logits(segs, list(ds.texts))
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for e, p in enumerate(paths):
        np.save(p, z[:, e])
    return z


@dataclass
class ExitRecord:
    version: str
    router: str
    policy: str
    threshold: float
    temperatures: list[float]
    exit_layers: list[int]
    target: dict
    confidence: float | None
    dataset: str
    created: str
    calibration: dict
    candidates: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    schema: int = EXIT_RECORD_SCHEMA
    kind: str = "multi-exit"

    def to_json(self) -> str:
        d = asdict(self)
        d["threshold"] = repr(self.threshold)
        return json.dumps(d, indent=2)

    def to_record(self) -> Record:
        """The common record (``elang.calibration.record``): one threshold for every exit."""
        steps = len(self.exit_layers) - 1
        return Record(
            c.TASK_EXITS, self.router, self.version, self.policy, [self.threshold] * steps, list(self.temperatures),
            self.target, self.confidence, self.calibration, self.dataset, self.created,
            payload=json.loads(self.to_json()), warnings=list(self.warnings),
        )  # fmt: skip


def describe_target(kind: str, value: float) -> str:
    return {
        "accuracy": f"accuracy >= {value:.2%}",
        "accuracy_drop": f"accuracy >= the last exit's - {value:g} pt",
        "mean_exit_layer": f"mean exit layer <= {value:g}",
        "compute_budget": f"compute <= {value:g} x the full model (FLOPs)",
    }[kind]


def _validate(kind: str, value: float, layers: tuple[int, ...]) -> None:
    if kind not in EXIT_TARGETS:
        raise TargetError(f"unknown target {kind!r} for a multi-exit router; choose one of {', '.join(EXIT_TARGETS)}")
    if not math.isfinite(value):
        raise TargetError(f"target {kind} must be a finite number, got {value}")
    if kind == "accuracy" and not 0 <= value <= 1:
        raise TargetError(f"target accuracy must lie within [0, 1], got {value}")
    if kind == "accuracy_drop" and not 0 <= value <= 100:
        raise TargetError(f"max accuracy drop is in points within [0, 100], got {value}")
    if kind == "mean_exit_layer" and not layers[0] <= value:
        raise TargetError(f"mean exit layer {value} is below the first exit ({layers[0]})")
    if kind == "compute_budget" and not 0 < value:
        raise TargetError(f"compute budget must be > 0 (share of the full model), got {value}")


def candidate_thresholds(policy: Policy, logits: np.ndarray, temps: list[float], points: int = 200) -> np.ndarray:
    """Thresholds to scan, ordered from the cheapest (most rows leave early) to the safest
    (every row runs to the last exit); placed on quantiles of the scores of the fit part."""
    exits = logits.shape[1]
    if policy.name == "patience":
        return np.arange(exits, dtype=np.float64)  # patience 0 first: every row leaves at once
    pooled = np.concatenate([policy.score(logits[:, e], temps[e]) for e in range(exits - 1)])
    qs = np.unique(np.quantile(pooled, np.linspace(0, 1, points)))
    if policy.escalate_above:  # energy, entropy: higher thresholds keep more rows early
        return np.concatenate([[np.inf], qs[::-1], [-np.inf]])
    return np.concatenate([[-np.inf], qs, [np.inf]])


def replay(logits: np.ndarray, labels: np.ndarray, policy: Policy, thresholds: np.ndarray, temps: list[float]):  # noqa: ANN201
    """Per threshold: each row's correctness and the index of the exit that answered ([T, n] each)."""
    ok = np.zeros((len(thresholds), len(labels)), dtype=bool)
    route = np.zeros((len(thresholds), len(labels)), dtype=np.int32)
    for i, t in enumerate(thresholds):
        r, z, _ = cascade_offline(logits, policy, t, temps)
        ok[i], route[i] = z.argmax(1) == labels, r
    return ok, route


def calibrate_exits(
    router: ExitRouter,
    logits: np.ndarray,
    labels: np.ndarray,
    policy_name: str,
    target_kind: str,
    target_value: float,
    confidence: float | None,
    dataset: str,
    fit_t: bool = True,
    seed: int = 0,
) -> ExitRecord:
    """Fit temperatures and choose the threshold (see the module docstring)."""
    if policy_name not in EXIT_POLICIES:
        raise TargetError(f"unknown exit policy {policy_name!r}; choose one of {', '.join(EXIT_POLICIES)}")
    _validate(target_kind, target_value, router.layers)
    labels = np.asarray(labels)
    policy = get_policy(policy_name)
    fit, hold = split_for_fitting(len(labels), seed=seed)
    exits = logits.shape[1]
    temps = [fit_temperature(logits[fit, e], labels[fit], *TEMPERATURE_BOUNDS) if fit_t else 1.0 for e in range(exits)]
    thresholds = candidate_thresholds(policy, logits[fit], temps)
    z, y = logits[hold], labels[hold]
    ok, route = replay(z, y, policy, thresholds, temps)
    layers = np.asarray(router.layers, dtype=np.float64)
    layer_of = layers[route]  # [T, n]
    n = len(y)
    last_ok = z[:, -1].argmax(1) == y
    if target_kind in ("accuracy", "accuracy_drop"):
        loss = (1.0 - ok) if target_kind == "accuracy" else (last_ok[None, :].astype(float) - ok)
        alpha = 1 - target_value if target_kind == "accuracy" else target_value / 100
        mean, sd = loss.mean(1), loss.std(1)
        # fixed_sequence walks from the last index down: the safest threshold is last already.
        p = clt_p_values(mean, sd, n, alpha)
        point_ok = mean <= alpha
        chosen, point = _walk(p, point_ok, confidence), _walk(p, point_ok, None)
    else:
        cost = layer_of if target_kind == "mean_exit_layer" else router.compute_share()[route]
        mean, sd = cost.mean(1), cost.std(1)
        # Walk from the cheapest (index 0) towards safer ones: reverse so the cheapest is last.
        p = clt_p_values(mean[::-1], sd[::-1], n, target_value)
        point_ok = (mean <= target_value)[::-1]
        idx, pidx = _walk(p, point_ok, confidence), _walk(p, point_ok, None)
        chosen = None if idx is None else len(thresholds) - 1 - idx
        point = None if pidx is None else len(thresholds) - 1 - pidx
    if chosen is None:
        raise TargetError(
            f"no threshold meets {describe_target(target_kind, target_value)} on the {n} held-out texts"
            + ("" if confidence is None else f" with confidence {confidence:g}")
            + f" (the last exit alone reaches {last_ok.mean():.2%}; mean exit layer at the safest threshold "
            f"{layer_of[-1].mean():.2f})"
        )
    warnings = []
    if fit_t and any(t <= TEMPERATURE_BOUNDS[0] * 1.001 or t >= TEMPERATURE_BOUNDS[1] * 0.999 for t in temps):
        warnings.append(f"an exit's fitted temperature hit its bounds {TEMPERATURE_BOUNDS}: {temps}")
    per_exit = [
        {
            "layer": int(router.layers[e]),
            "rows": int(np.sum(route[chosen] == e)),
            "share": float(np.mean(route[chosen] == e)),
            "accuracy": float(ok[chosen][route[chosen] == e].mean()) if np.any(route[chosen] == e) else None,
            "exit_accuracy_alone": float(np.mean(z[:, e].argmax(1) == y)),
        }
        for e in range(exits)
    ]
    stats = {
        "examples": len(labels),
        "fit_examples": len(fit),
        "held_out_examples": n,
        "accuracy": float(ok[chosen].mean()),
        "last_exit_accuracy": float(last_ok.mean()),
        "mean_exit_layer": float(layer_of[chosen].mean()),
        "layer_share": float(layer_of[chosen].mean() / router.layers_total),
        "compute_share": float(router.compute_share()[route[chosen]].mean()),
        "point_estimate": None
        if point is None
        else {
            "threshold": float(thresholds[point]),
            "accuracy": float(ok[point].mean()),
            "mean_exit_layer": float(layer_of[point].mean()),
        },
        "per_exit": per_exit,
        "guarantee": None
        if confidence is None
        else f"{describe_target(target_kind, target_value)} with probability >= {confidence:g} (CLT margin, "
        "fixed-sequence testing over the candidate thresholds)",
    }
    show = np.unique(np.linspace(0, len(thresholds) - 1, 12).round().astype(int).tolist() + [chosen])
    cands = [
        {
            "threshold": float(thresholds[i]),
            "accuracy": float(ok[i].mean()),
            "mean_exit_layer": float(layer_of[i].mean()),
            "layer_share": float(layer_of[i].mean() / router.layers_total),
            "compute_share": float(router.compute_share()[route[i]].mean()),
            "chosen": bool(i == chosen),
        }
        for i in show
    ]
    version = (
        "exits-" + hashlib.sha256(f"{dataset}|{policy_name}|{thresholds[chosen]!r}|{temps}".encode()).hexdigest()[:10]
    )
    return ExitRecord(
        version=version,
        router=router.name,
        policy=policy_name,
        threshold=float(thresholds[chosen]),
        temperatures=[float(t) for t in temps],
        exit_layers=list(router.layers),
        target={"kind": target_kind, "value": target_value},
        confidence=confidence,
        dataset=dataset,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - Python 3.10 images
        calibration=stats,
        candidates=cands,
        warnings=warnings,
    )


def _walk(p: np.ndarray, point_ok: np.ndarray, confidence: float | None) -> int | None:
    """Fixed-sequence testing at level 1 - confidence from the last index down; or, without a margin,
    the lowest index whose point estimate meets the target and from which every later one does too."""
    allowed = np.ones(len(p), dtype=bool)
    if confidence is not None:
        return fixed_sequence(p, allowed, 1 - confidence)
    return fixed_sequence(np.where(point_ok, 0.0, 1.0), allowed, 0.5)


def evaluate_exit_record(
    record: ExitRecord,
    logits: np.ndarray,
    labels: np.ndarray,
    layers_total: int,
    compute_share: np.ndarray | None = None,
) -> dict:
    """How a record's threshold lands on another split (e.g. test)."""
    route, z, _ = cascade_offline(logits, get_policy(record.policy), record.threshold, record.temperatures)
    ok = z.argmax(1) == np.asarray(labels)
    layer = np.asarray(record.exit_layers)[route]
    return {
        "examples": len(labels),
        "accuracy": float(ok.mean()),
        "last_exit_accuracy": float(np.mean(logits[:, -1].argmax(1) == labels)),
        "mean_exit_layer": float(layer.mean()),
        "layer_share": float(layer.mean() / layers_total),
        "compute_share": None if compute_share is None else float(np.asarray(compute_share)[route].mean()),
        "rows_per_exit": {int(lyr): int(np.sum(route == e)) for e, lyr in enumerate(record.exit_layers)},
    }


def apply_exit_record(repository: Path, record: ExitRecord) -> Path:
    """Write the record's policy, threshold (every exit), temperatures, version and the stages'
    fingerprints into the router (``elang.calibration.record.apply_record``)."""
    return apply_common(Path(repository), record.to_record())


def candidates_markdown(record: ExitRecord) -> str:
    lines = [
        "| threshold | accuracy | mean exit layer | layers run | FLOPs vs full model | |",
        "|---|---|---|---|---|---|",
    ]
    for cand in record.candidates:
        mark = "**chosen**" if cand["chosen"] else ""
        lines.append(
            f"| {cand['threshold']:.4g} | {cand['accuracy']:.2%} | {cand['mean_exit_layer']:.2f} | "
            f"{cand['layer_share']:.1%} | {cand['compute_share']:.1%} | {mark} |"
        )
    return "\n".join(lines)


def per_exit_markdown(record: ExitRecord) -> str:
    lines = ["| exit layer | rows | share | accuracy of its rows | the exit alone |", "|---|---|---|---|---|"]
    for e in record.calibration["per_exit"]:
        acc = "-" if e["accuracy"] is None else f"{e['accuracy']:.2%}"
        lines.append(f"| {e['layer']} | {e['rows']} | {e['share']:.1%} | {acc} | {e['exit_accuracy_alone']:.2%} |")
    return "\n".join(lines)


def exit_curves(
    logits: np.ndarray, labels: np.ndarray, temps: list[float], layers: tuple[int, ...], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per exit policy: (mean exit layer, accuracy) on the held-out part for each candidate threshold."""
    fit, hold = split_for_fitting(len(labels), seed=seed)
    out = {}
    for name in EXIT_POLICIES:
        pol = get_policy(name)
        thr = candidate_thresholds(pol, logits[fit], temps, points=60)
        ok, route = replay(logits[hold], np.asarray(labels)[hold], pol, thr, temps)
        out[name] = (np.asarray(layers, dtype=float)[route].mean(1), ok.mean(1))
    return out


def plot_exit_curves(curves: dict, last_accuracy: float, path: Path, chosen: tuple[float, float] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, (layer, acc) in curves.items():
        ax.plot(layer, acc * 100, marker=".", ms=3, label=name)
    ax.axhline(last_accuracy * 100, color="gray", lw=0.8, ls="--", label="last exit")
    ax.axhline(last_accuracy * 100 - 0.5, color="gray", lw=0.8, ls=":", label="last exit - 0.5 pt")
    if chosen:
        ax.scatter([chosen[0]], [chosen[1] * 100], color="black", zorder=5, label="chosen")
    ax.set_xlabel("mean exit layer")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def curves_markdown(curves: dict, layers_total: int, drops: tuple[float, ...] = (0.5, 1.0)) -> str:
    """Per policy: the lowest mean exit layer whose accuracy is within each drop of the best at full depth."""
    lines = ["| policy | " + " | ".join(f"mean exit layer within {d:g} pt" for d in drops) + " |"]
    lines.append("|---" * (len(drops) + 1) + "|")
    for name, (layer, acc) in curves.items():
        full = acc[np.argmax(layer)]
        cells = []
        for d in drops:
            ok = acc >= full - d / 100
            cells.append(
                f"{layer[ok].min():.2f} ({layer[ok].min() / layers_total:.0%} of the layers)" if ok.any() else "-"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
