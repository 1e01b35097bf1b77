"""`elang calibrate`: collect validation scores, compare criteria, choose and record a threshold.

Swift and Super run offline with ONNX Runtime from the repository's stage folders (or through
a running server with ``url``). The record is a versioned JSON file that
:func:`apply_record` writes into the router's config.pbtxt; a server started with model
control ``explicit`` picks it up with :func:`reload_router` without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.calibration import (
    Choice,
    Target,
    TargetError,
    auroc,
    bootstrap_lower_bound,
    choose,
    ece,
    fit_temperature,
    routing_curve,
)
from elang.routing import POLICIES, energy, get_policy

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1
TABLE_FRACTIONS = (0.1, 0.2, 0.3, 0.5)
CRITERIA = ("energy", "softmax", "entropy")


@dataclass
class Scores:
    """Per-example logits of both stages on one split, with the true labels."""

    swift: np.ndarray
    super: np.ndarray
    labels: np.ndarray

    @property
    def swift_ok(self) -> np.ndarray:
        return self.swift.argmax(1) == self.labels

    @property
    def super_ok(self) -> np.ndarray:
        return self.super.argmax(1) == self.labels

    def save(self, path: Path) -> None:
        np.savez_compressed(path, swift=self.swift, super=self.super, labels=self.labels)

    @classmethod
    def load(cls, path: Path) -> Scores:
        d = np.load(path)
        return cls(d["swift"], d["super"], d["labels"])


def _stage_dir(repository: Path, stage: str) -> tuple[Path, int]:
    from elang.repository import parse_config

    cfg_path = repository / stage / "config.pbtxt"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: export a {stage} into {repository} first")
    params = parse_config(cfg_path.read_text()).parameters
    max_length = int(params[c.PARAM_MAX_LENGTH].string_value) if c.PARAM_MAX_LENGTH in params else c.DEFAULT_MAX_LENGTH
    version = repository / stage / "1"
    if not (version / "model.onnx").is_file():  # a native ensemble: the ONNX lives in NAME_onnx
        version = repository / f"{stage}_onnx" / "1"
        if not (version / "tokenizer.json").is_file():
            (version / "tokenizer.json").symlink_to(repository / f"{stage}_tokenizer" / "1" / "tokenizer.json")
    return version, max_length


def collect_scores(repository: Path, texts: list[str], labels: np.ndarray, url: str | None = None) -> Scores:
    """Swift and Super logits for ``texts``: offline with ONNX Runtime, or through the server at ``url``."""
    out = {}
    for stage in c.STAGES:
        if url:
            from elang.client.client import ElangClient

            res = ElangClient(url, model=stage, timeout_s=600).classify(texts, progress=True, raise_on_error=True)
            out[stage] = np.stack([p.logits for p in res.predictions]).astype(np.float32)
        else:
            from elang.classifier import OnnxTextClassifier, logits_in_batches

            folder, max_length = _stage_dir(Path(repository), stage)
            out[stage] = logits_in_batches(OnnxTextClassifier(folder, max_length=max_length), texts)
    return Scores(out[c.SWIFT_MODEL], out[c.SUPER_MODEL], np.asarray(labels))


def measure_costs(repository: Path, texts: list[str], batch: int = 32, rounds: int = 3) -> dict[str, float]:
    """Milliseconds per text of each stage offline (ONNX Runtime, batches of ``batch``), best of ``rounds``."""
    from elang.classifier import OnnxTextClassifier

    sample = texts[: batch * 8]
    costs = {}
    for stage in c.STAGES:
        folder, max_length = _stage_dir(Path(repository), stage)
        model = OnnxTextClassifier(folder, max_length=max_length)
        model(sample[:batch])  # warm-up
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(0, len(sample), batch):
                model(sample[i : i + batch])
            best = min(best, (time.perf_counter() - t0) / len(sample))
        costs[stage] = best * 1e3
    return costs


@dataclass
class CriterionRow:
    name: str
    auroc: float
    accuracy_at: dict[str, float]  # Super fraction ("0.1") -> routed accuracy
    fraction_for_super_accuracy: float | None


def criterion_table(scores: Scores, temperature: float) -> list[CriterionRow]:
    """AUROC of each criterion for "Swift is wrong", accuracy at equal Super fractions."""
    rows = []
    super_acc = scores.super_ok.mean()
    for name in CRITERIA:
        pol = get_policy(name)
        s = pol.score(scores.swift, temperature)
        curve = routing_curve(s, scores.swift_ok, scores.super_ok, pol)
        unsure = s if pol.escalate_above else -s
        reach = np.flatnonzero(curve.accuracy >= super_acc - 1e-12)
        rows.append(
            CriterionRow(
                name,
                auroc(unsure, ~scores.swift_ok),
                {f"{f:g}": float(curve.accuracy[int(round(f * curve.n))]) for f in TABLE_FRACTIONS},
                float(reach[0] / curve.n) if reach.size else None,
            )
        )
    return rows


@dataclass
class CalibrationRecord:
    version: str
    criterion: str
    threshold: float
    temperature: float
    target: dict
    confidence: float | None
    dataset: str
    created: str
    validation: dict
    costs_ms: dict
    criteria: list[dict] = field(default_factory=list)
    schema: int = RECORD_SCHEMA

    def to_json(self) -> str:
        d = asdict(self)
        d["threshold"] = repr(self.threshold)  # keeps inf and full precision
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> CalibrationRecord:
        d = json.loads(text)
        if d.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"calibration record schema {d.get('schema')!r} is not {RECORD_SCHEMA}")
        d["threshold"] = float(d["threshold"])
        return cls(**d)


def calibrate(
    scores: Scores,
    target: Target,
    criterion: str = "energy",
    confidence: float | None = 0.9,
    resamples: int = 1000,
    costs_ms: dict[str, float] | None = None,
    dataset: str = "",
    fit_t: bool = True,
) -> tuple[CalibrationRecord, Choice, list[CriterionRow]]:
    """Fit T, compare criteria, pick the criterion (``auto``: highest AUROC) and the threshold."""
    if criterion != "auto" and criterion not in POLICIES:
        raise TargetError(f"unknown criterion {criterion!r}; choose auto or one of {', '.join(POLICIES)}")
    if confidence is not None and not 0.5 <= confidence < 1:
        raise TargetError(f"confidence must lie within [0.5, 1), got {confidence}")
    target.validate()
    t = fit_temperature(scores.swift, scores.labels) if fit_t else 1.0
    rows = criterion_table(scores, t)
    name = max(rows, key=lambda r: r.auroc).name if criterion == "auto" else criterion
    pol = get_policy(name)
    s = pol.score(scores.swift, t)
    curve = routing_curve(s, scores.swift_ok, scores.super_ok, pol)
    ratio = None
    if costs_ms:
        ratio = costs_ms[c.SWIFT_MODEL] / costs_ms[c.SUPER_MODEL]
    lower = None
    if confidence is not None and target.kind in ("accuracy", "accuracy_drop"):
        lower = bootstrap_lower_bound(
            curve,
            scores.swift_ok,
            scores.super_ok,
            confidence,
            resamples,
            relative_to_super=target.kind == "accuracy_drop",
        )
    choice = choose(curve, target, pol, float(scores.super_ok.mean()), ratio, lower)
    validation = {
        "examples": int(len(scores.labels)),
        "swift_accuracy": float(scores.swift_ok.mean()),
        "super_accuracy": float(scores.super_ok.mean()),
        "routed_accuracy": choice.accuracy,
        "super_fraction": choice.fraction,
        "lower_bound": choice.lower_bound,
        "required_accuracy": choice.required_accuracy,
        "point_estimate_fraction": None if choice.point_k is None else choice.point_k / curve.n,
        "ece_before": ece(scores.swift, scores.labels, 1.0),
        "ece_after": ece(scores.swift, scores.labels, t),
        "relative_compute": None if ratio is None else ratio + choice.fraction,
        # the router's ENERGY (at this temperature) on validation: the reference for drift alerts
        "energy_quantiles": {
            f"{q:g}": float(v)
            for q, v in zip(
                (0.05, 0.25, 0.5, 0.75, 0.95), np.quantile(energy(scores.swift, t), (0.05, 0.25, 0.5, 0.75, 0.95))
            )
        },
    }
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(f"{dataset}{name}{choice.threshold}{t}{created}".encode()).hexdigest()[:8]
    record = CalibrationRecord(
        version=f"cal-{created[:10]}-{name}-{digest}",
        criterion=name,
        threshold=choice.threshold,
        temperature=t,
        target={"kind": target.kind, "value": target.value, "describe": target.describe()},
        confidence=confidence if lower is not None else None,
        dataset=dataset,
        created=created,
        validation=validation,
        costs_ms=costs_ms or {},
        criteria=[asdict(r) for r in rows],
    )
    return record, choice, rows


def evaluate_record(record: CalibrationRecord, scores: Scores) -> dict:
    """Accuracy and Super fraction of the recorded threshold on another split (e.g. test)."""
    pol = get_policy(record.criterion)
    esc = pol.escalate(pol.score(scores.swift, record.temperature), record.threshold)
    acc = float(np.mean(np.where(esc, scores.super_ok, scores.swift_ok)))
    return {
        "examples": int(len(scores.labels)),
        "routed_accuracy": acc,
        "super_fraction": float(esc.mean()),
        "swift_accuracy": float(scores.swift_ok.mean()),
        "super_accuracy": float(scores.super_ok.mean()),
    }


def apply_record(repository: Path, record: CalibrationRecord) -> Path:
    """Write the record's criterion, threshold, temperature and version into the router config."""
    from elang.atomic import write_text
    from elang.repository import parse_config, render_config
    from elang.router import RouterSettings

    cfg_path = Path(repository) / c.ROUTER_MODEL / "config.pbtxt"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {repository} has no elang router")
    cfg = parse_config(cfg_path.read_text())
    values = {
        c.PARAM_POLICY: record.criterion,
        c.PARAM_THRESHOLD: repr(record.threshold),
        c.PARAM_TEMPERATURE: repr(record.temperature),
        c.PARAM_CALIBRATION_VERSION: record.version,
    }
    for k, v in values.items():
        cfg.parameters[k].string_value = v
    RouterSettings.from_parameters({k: v.string_value for k, v in cfg.parameters.items()})
    # The record first: a reload that sees the new threshold also finds the record behind it.
    write_text(Path(repository) / c.ROUTER_MODEL / "calibration.json", record.to_json())
    write_text(cfg_path, render_config(cfg))
    return cfg_path


def oracle_point(scores: Scores) -> tuple[float, float]:
    """(Super fraction, accuracy) of perfect routing: escalate exactly where Swift is wrong and Super right."""
    esc = ~scores.swift_ok & scores.super_ok
    return float(esc.mean()), float(np.mean(scores.swift_ok | scores.super_ok))


def curves(scores: Scores, temperature: float) -> dict[str, np.ndarray]:
    """Accuracy at every Super fraction k/n for each criterion (x axis: ``fractions``)."""
    out: dict[str, np.ndarray] = {}
    for name in CRITERIA:
        pol = get_policy(name)
        curve = routing_curve(pol.score(scores.swift, temperature), scores.swift_ok, scores.super_ok, pol)
        out[name] = curve.accuracy
        out["fractions"] = curve.fractions
    return out


def curve_markdown(scores: Scores, temperature: float, cost_ratio: float | None, step: float = 0.1) -> str:
    """Accuracy vs Super fraction (and relative compute) per criterion, with reference points."""
    cv = curves(scores, temperature)
    n = len(scores.labels)
    head = "| Super fraction | relative compute | " + " | ".join(CRITERIA) + " |"
    lines = [head, "|" + "---|" * (2 + len(CRITERIA))]
    for f in np.round(np.arange(0, 1 + 1e-9, step), 3):
        k = int(round(f * n))
        rc = "-" if cost_ratio is None else f"{cost_ratio + f:.3f}"
        lines.append(f"| {f:.0%} | {rc} | " + " | ".join(f"{cv[name][k]:.2%}" for name in CRITERIA) + " |")
    of, oa = oracle_point(scores)
    rc = "-" if cost_ratio is None else f"{cost_ratio + of:.3f}"
    lines += [
        "",
        f"Swift only: {scores.swift_ok.mean():.2%} (relative compute {cost_ratio or 0:.3f}); "
        f"Super only: {scores.super_ok.mean():.2%} (1.0 + Swift when routed); "
        f"oracle routing: {oa:.2%} at {of:.1%} Super (relative compute {rc}).",
    ]
    return "\n".join(lines)


def plot_curves(
    scores: Scores, temperature: float, cost_ratio: float | None, path: Path, chosen: tuple[float, float] | None = None
) -> Path:
    """PNG: accuracy vs Super fraction (top x axis: relative compute) for each criterion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = curves(scores, temperature)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name in CRITERIA:
        ax.plot(cv["fractions"], cv[name] * 100, label=name)
    ax.axhline(scores.super_ok.mean() * 100, color="grey", ls="--", lw=1, label="Super only")
    ax.axhline(scores.swift_ok.mean() * 100, color="grey", ls=":", lw=1, label="Swift only")
    of, oa = oracle_point(scores)
    ax.scatter([of], [oa * 100], marker="*", s=120, color="black", label="oracle routing", zorder=5)
    if chosen:
        ax.scatter([chosen[0]], [chosen[1] * 100], marker="o", s=60, color="red", label="chosen threshold", zorder=6)
    ax.set_xlabel("share of texts sent to Super")
    ax.set_ylabel("accuracy (%)")
    if cost_ratio is not None:
        top = ax.secondary_xaxis("top", functions=(lambda f: f + cost_ratio, lambda r: r - cost_ratio))
        top.set_xlabel("relative compute (Super only = 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def criterion_markdown(rows: list[CriterionRow]) -> str:
    head = "| criterion | AUROC (Swift wrong) | " + " | ".join(f"acc @ {f:.0%} Super" for f in TABLE_FRACTIONS)
    head += " | Super share to reach Super's accuracy |"
    lines = [head, "|" + "---|" * (3 + len(TABLE_FRACTIONS))]
    for r in rows:
        reach = "never" if r.fraction_for_super_accuracy is None else f"{r.fraction_for_super_accuracy:.1%}"
        lines.append(
            f"| {r.name} | {r.auroc:.3f} | "
            + " | ".join(f"{r.accuracy_at[f'{f:g}']:.2%}" for f in TABLE_FRACTIONS)
            + f" | {reach} |"
        )
    return "\n".join(lines)


def cached_scores(repository: Path, split_name: str, ds, fingerprint: str, cache_dir: Path, url: str | None) -> Scores:  # noqa: ANN001
    """:func:`collect_scores` cached per (stage models, data split): the ONNX files' sizes and mtimes key it."""
    repository = Path(repository)
    h = hashlib.sha256(f"{fingerprint}|{split_name}|{len(ds)}|{url or 'offline'}".encode())
    for stage in c.STAGES:
        for onnx in sorted((repository).glob(f"{stage}*/1/model.onnx")):
            st = onnx.stat()
            h.update(f"{onnx.name}{st.st_size}{st.st_mtime_ns}".encode())
    path = Path(cache_dir) / "scores" / f"{split_name}-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        return Scores.load(path)
    log.info("running swift and super on %d %s texts", len(ds), split_name)
    scores = collect_scores(repository, ds.texts, ds.labels, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores.save(path)
    return scores
