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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.calibration.record import Record
from elang.calibration.record import apply_record as apply_common
from elang.calibration.thresholds import (
    Choice,
    Target,
    TargetError,
    auroc,
    choose,
    ece,
    fit_temperature,
    realizable,
    routing_curve,
    simulate_coverage,
)
from elang.client.client import ElangClient
from elang.core.identity import file_identity
from elang.core.routing import (
    LEARNED,
    POLICY_NAMES,
    DeferralRule,
    Policy,
    energy,
    fit_deferral_rule,
    get_policy,
    learned_policy,
    text_lengths,
)
from elang.core.texts import truncation_summary
from elang.repository.writer import parse_config
from elang.runtimes.classifier import OnnxTextClassifier, TextTokenizer, logits_in_batches
from elang.runtimes.openvino import NATIVE_IR_FILES, PRECISION_HINTS

log = logging.getLogger(__name__)

RECORD_SCHEMA = 2
TABLE_FRACTIONS = (0.1, 0.2, 0.3, 0.5)
CRITERIA = ("energy", "softmax", "entropy")  # fixed criteria; "learned" is fitted per calibration
TEMPERATURE_BOUNDS = (0.25, 10.0)  # a fitted T outside squeezes or flattens every energy
FIT_SHARE = 1 / 3  # of the calibration split: fits T and the learned rule; the rest sets the threshold


@dataclass
class Scores:
    """Per-example logits of both stages on one split, with the true labels."""

    swift: np.ndarray
    super: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray | None = None  # UTF-8 bytes per text (a feature of the learned rule)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> Scores:
        return Scores(
            self.swift[idx], self.super[idx], self.labels[idx], None if self.lengths is None else self.lengths[idx]
        )

    @property
    def swift_ok(self) -> np.ndarray:
        return self.swift.argmax(1) == self.labels

    @property
    def super_ok(self) -> np.ndarray:
        return self.super.argmax(1) == self.labels

    def policy_scores(self, policy: Policy, temperature: float) -> np.ndarray:
        return policy.score(self.swift, temperature, self.lengths)


def stage_truncation(repository: Path, stage: str, texts: list[str], pairs: list[str] | None = None) -> str:
    """How many of ``texts`` the served ``stage`` cuts at its max_length (``truncation_summary``)."""
    folder, max_length = _stage_dir(Path(repository), stage)
    tok = TextTokenizer(folder, max_length)
    return truncation_summary(tok.lengths(texts[:5000], pairs[:5000] if pairs else None), max_length)


def _stage_dir(repository: Path, stage: str) -> tuple[Path, int]:

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


def served_engine(repository: Path, stage: str) -> tuple[str, str]:
    """(engine, precision) the served ``stage`` runs: a python-ort stage's parameters, or the
    native OpenVINO backend's precision hint; (onnxruntime, fp32) otherwise."""
    repository = Path(repository)
    params = parse_config((repository / stage / "config.pbtxt").read_text()).parameters
    if c.PARAM_ENGINE in params:
        prec = params[c.PARAM_PRECISION].string_value if c.PARAM_PRECISION in params else "fp32"
        return params[c.PARAM_ENGINE].string_value or "onnxruntime", prec or "fp32"
    onnx_cfg = repository / f"{stage}_onnx" / "config.pbtxt"
    if onnx_cfg.is_file():
        cfg = parse_config(onnx_cfg.read_text())
        if cfg.backend == "openvino":
            if cfg.default_model_filename == NATIVE_IR_FILES[0]:  # the int8 IR (elang export --precision int8)
                return "openvino", "int8"
            hint = (
                cfg.parameters["INFERENCE_PRECISION_HINT"].string_value
                if "INFERENCE_PRECISION_HINT" in cfg.parameters
                else "f32"
            )
            return "openvino", {"f32": "fp32"}.get(hint, hint)
    return "onnxruntime", "fp32"


def stage_classifier(repository: Path, stage: str) -> OnnxTextClassifier:
    """The stage as it is served (its max_length, engine and precision), run offline."""
    folder, max_length = _stage_dir(Path(repository), stage)
    engine, precision = served_engine(repository, stage)
    return OnnxTextClassifier(folder, max_length=max_length, engine=engine, precision=precision)


def stage_logits(folder_or_repo: Path, stage: str, texts: list[str], url: str | None = None) -> np.ndarray:
    """One stage's logits for ``texts``: offline with ONNX Runtime, or through the server at ``url``."""
    if url:
        res = ElangClient(url, model=stage, timeout_s=600).classify(texts, progress=True, raise_on_error=True)
        return np.stack([p.logits for p in res.predictions]).astype(np.float32)

    return logits_in_batches(stage_classifier(Path(folder_or_repo), stage), texts)


def collect_scores(
    repository: Path, texts: list[str], labels: np.ndarray, url: str | None = None, super_stage: str = c.SUPER_MODEL
) -> Scores:
    """Swift and Super logits for ``texts``: offline with ONNX Runtime, or through the server at ``url``."""
    swift, sup = (stage_logits(repository, s, texts, url) for s in (c.SWIFT_MODEL, super_stage))
    return Scores(swift, sup, np.asarray(labels), text_lengths(texts))


def stage_cost(repository: Path, stage: str, texts: list[str], batch: int = 32, rounds: int = 3) -> float:
    """Milliseconds per text of one stage offline, as served (its engine and precision; batches of
    ``batch``), best of ``rounds``."""

    sample = texts[: batch * 8]
    model = stage_classifier(Path(repository), stage)
    model(sample[:batch])  # warm-up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(0, len(sample), batch):
            model(sample[i : i + batch])
        best = min(best, (time.perf_counter() - t0) / len(sample))
    return best * 1e3


def measure_costs(
    repository: Path, texts: list[str], batch: int = 32, rounds: int = 3, super_stage: str = c.SUPER_MODEL
) -> dict[str, float]:
    """:func:`stage_cost` of Swift and Super (keyed by role: swift, super)."""
    return {
        c.SWIFT_MODEL: stage_cost(repository, c.SWIFT_MODEL, texts, batch, rounds),
        c.SUPER_MODEL: stage_cost(repository, super_stage, texts, batch, rounds),
    }


@dataclass
class CriterionRow:
    name: str
    auroc: float
    accuracy_at: dict[str, float]  # Super fraction ("0.1") -> routed accuracy
    fraction_for_super_accuracy: float | None
    fraction_at_target: float | None = None  # the share the (certified) target needs; None: not met


def criterion_row(
    name: str, policy: Policy, scores: Scores, temperature: float, required: float | None = None
) -> CriterionRow:
    """AUROC of one criterion for "Swift is wrong" and its accuracy at equal Super fractions.

    With ``required`` (an accuracy), ``fraction_at_target`` is the smallest Super share whose
    point estimate reaches it on these scores (no guarantee: a threshold picked on them).
    """
    s = scores.policy_scores(policy, temperature)
    curve = routing_curve(s, scores.swift_ok, scores.super_ok, policy)
    unsure = s if policy.escalate_above else -s
    reach = np.flatnonzero(curve.accuracy >= scores.super_ok.mean() - 1e-12)
    at = None
    if required is not None:
        ok = np.flatnonzero((curve.accuracy >= required - 1e-12) & realizable(curve))
        at = float(ok[0] / curve.n) if ok.size else None
    return CriterionRow(
        name,
        auroc(unsure, ~scores.swift_ok),
        {f"{f:g}": float(curve.accuracy[int(round(f * curve.n))]) for f in TABLE_FRACTIONS},
        float(reach[0] / curve.n) if reach.size else None,
        at,
    )


def criterion_table(
    scores: Scores, temperature: float, policies: dict[str, Policy] | None = None, required: float | None = None
) -> list[CriterionRow]:
    """:func:`criterion_row` for each criterion (default: the fixed ones)."""
    policies = policies or {n: get_policy(n) for n in CRITERIA}
    return [criterion_row(n, p, scores, temperature, required) for n, p in policies.items()]


def criteria_policies(rule: DeferralRule | None = None) -> dict[str, Policy]:
    """The fixed criteria, plus the learned one when a fitted ``rule`` is given."""
    policies: dict[str, Policy] = {n: get_policy(n) for n in CRITERIA}
    if rule is not None:
        policies[LEARNED] = learned_policy(rule)
    return policies


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
    calibration: dict
    costs_ms: dict
    criteria: list[dict] = field(default_factory=list)
    rule: dict | None = None  # the learned deferral rule (weights and feature spec), when fitted
    warnings: list[str] = field(default_factory=list)
    schema: int = RECORD_SCHEMA

    def to_json(self) -> str:
        d = asdict(self)
        d["threshold"] = repr(self.threshold)  # keeps inf and full precision
        return json.dumps(d, indent=2)

    def to_record(self, router: str = c.ROUTER_MODEL) -> Record:
        """The common record (``elang.calibration.record``) with this one as its payload."""
        return Record(
            c.TASK_CLASSIFY, router, self.version, self.criterion, [self.threshold], [self.temperature],
            self.target, self.confidence, self.calibration, self.dataset, self.created,
            payload=json.loads(self.to_json()), warnings=list(self.warnings),
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> CalibrationRecord:
        d = json.loads(text)
        if d.get("schema") == 1:  # schema 1 called the calibration statistics "validation"
            d["calibration"] = d.pop("validation")
            d["schema"] = RECORD_SCHEMA
        if d.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"calibration record schema {d.get('schema')!r} is not {RECORD_SCHEMA}")
        d["threshold"] = float(d["threshold"])
        return cls(**d)


def split_for_fitting(n: int, share: float = FIT_SHARE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, hold) indices of a calibration split: the hold part never sees a fitted parameter."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * share))
    if k < 1 or n - k < 1:
        raise TargetError(f"a calibration split of {n} examples is too small to fit on part and hold out the rest")
    return np.sort(order[:k]), np.sort(order[k:])


def unfit_reason(swift_ok: np.ndarray, super_ok: np.ndarray, unit: str = "examples") -> str:
    """Why a learned rule cannot be fitted on these outcomes, or "": it predicts that the Super fixes
    Swift's answer, and needs examples where it does and where it does not."""
    n, fixes = len(swift_ok), int((~np.asarray(swift_ok) & np.asarray(super_ok)).sum())
    if fixes == 0:
        return f"on the {n} {unit} it is fitted on, the Super never fixes a Swift mistake"
    if fixes == n:
        return f"on the {n} {unit} it is fitted on, the Super fixes a Swift mistake on every one"
    return ""


def _learned_unfit(fit: Scores) -> str:
    """Why the learned rule cannot rank the fit part's texts, or "" (:func:`unfit_reason`)."""
    return unfit_reason(fit.swift_ok, fit.super_ok)


def scores_warnings(scores: Scores, rows: list[CriterionRow], temperature: float) -> list[str]:
    """Loud warnings about a pair or a criterion that cannot route usefully."""
    out = []
    pred = np.unique(scores.swift.argmax(1))
    if pred.size == 1:
        out.append(f"Swift predicts a single class (label {int(pred[0])}) for every calibration text: retrain it")
    for r in rows:
        if r.auroc < 0.5:
            out.append(
                f"criterion {r.name} ranks Swift's mistakes worse than chance (AUROC {r.auroc:.3f} < 0.5): "
                "it escalates the texts Swift gets right"
            )
    lo, hi = TEMPERATURE_BOUNDS
    if temperature <= lo * 1.001 or temperature >= hi * 0.999:
        out.append(
            f"the fitted temperature hit its bound ({temperature:.3g}, bounds {lo:g}-{hi:g}): Swift's logits are unusual"
        )
    return out


def calibrate(
    scores: Scores,
    target: Target,
    criterion: str = "energy",
    confidence: float | None = 0.9,
    costs_ms: dict[str, float] | None = None,
    dataset: str = "",
    fit_t: bool = True,
    coverage_sims: int = 0,
    seed: int = 0,
) -> tuple[CalibrationRecord, Choice, list[CriterionRow]]:
    """Fit T and the learned rule on one part of ``scores``; compare, choose and certify on the rest.

    ``auto`` picks the criterion whose certified threshold needs the smallest Super share on the
    held-out part; its error budget is split over the criteria compared (Bonferroni), so the
    stated confidence covers that choice too.
    """
    if criterion != "auto" and criterion not in POLICY_NAMES:
        raise TargetError(f"unknown criterion {criterion!r}; choose auto or one of {', '.join(POLICY_NAMES)}")
    if confidence is not None and not 0.5 <= confidence < 1:
        raise TargetError(f"confidence must lie within [0.5, 1), got {confidence}")
    target.validate()
    fit_idx, hold_idx = split_for_fitting(len(scores), seed=seed)
    fit, hold = scores.subset(fit_idx), scores.subset(hold_idx)
    t = fit_temperature(fit.swift, fit.labels, *TEMPERATURE_BOUNDS) if fit_t else 1.0
    rule = fit_deferral_rule(fit.swift, fit.lengths, fit.swift_ok, fit.super_ok, t)
    policies = criteria_policies(rule)
    rows = criterion_table(hold, t, policies)
    ratio = costs_ms[c.SWIFT_MODEL] / costs_ms[c.SUPER_MODEL] if costs_ms else None
    certify = confidence is not None and target.kind in ("accuracy", "accuracy_drop")
    names = list(policies) if criterion == "auto" else [criterion]
    unfit = _learned_unfit(fit)
    if unfit and LEARNED in names:
        if criterion == LEARNED:
            raise TargetError(
                f"criterion learned cannot be fitted: {unfit}, so its rule gives every text the same score; "
                "choose a fixed criterion (energy, softmax, entropy) or calibrate on more labelled texts"
            )
        log.warning("criterion learned left out of auto: %s", unfit)
        names.remove(LEARNED)
    level = None
    if certify:
        level = 1 - (1 - confidence) / len(names)
    choices: dict[str, Choice] = {}
    for row in rows:
        pol = policies[row.name]
        curve = routing_curve(hold.policy_scores(pol, t), hold.swift_ok, hold.super_ok, pol)
        try:
            ch = choose(curve, target, pol, float(hold.super_ok.mean()), ratio, level, hold.swift_ok, hold.super_ok)
        except TargetError as exc:
            if row.name in names and len(names) == 1:
                raise
            log.info("criterion %s: %s", row.name, exc)
            continue
        row.fraction_at_target = ch.fraction
        choices[row.name] = ch
    candidates = [n for n in names if n in choices]
    if not candidates:
        raise TargetError(f"{target.describe()} cannot be met by any criterion on {len(hold)} held-out examples")
    auc = {r.name: r.auroc for r in rows}
    name = min(candidates, key=lambda n: (choices[n].fraction, -auc[n]))
    pol = policies[name]
    choice = choices[name]
    coverage = None
    if certify and coverage_sims:
        coverage = simulate_coverage(
            hold.policy_scores(pol, t), hold.swift_ok, hold.super_ok, pol, target, level, len(hold), coverage_sims, seed
        )
    stats = {
        "examples": int(len(scores)),
        "fit_examples": int(len(fit)),
        "held_out_examples": int(len(hold)),
        "swift_accuracy": float(hold.swift_ok.mean()),
        "super_accuracy": float(hold.super_ok.mean()),
        "routed_accuracy": choice.accuracy,
        "super_fraction": choice.fraction,
        "lower_bound": choice.lower_bound,
        "required_accuracy": choice.required_accuracy,
        "point_estimate_fraction": None if choice.point_k is None else choice.point_k / len(hold),
        "certified_at": level,
        "guarantee": None
        if not certify
        else (
            f"fixed-sequence test (Learn-then-Test) over every threshold at level {1 - level:.3g} per criterion "
            f"({len(names)} compared, Bonferroni): with probability >= {confidence:g} (asymptotically, normal "
            "approximation) the threshold meets the target on data drawn like the calibration split"
        ),
        "coverage": coverage,
        "ece_before": ece(hold.swift, hold.labels, 1.0),
        "ece_after": ece(hold.swift, hold.labels, t),
        "relative_compute": None if ratio is None else ratio + choice.fraction,
        # the router's ENERGY (at this temperature): the reference for drift alerts
        "energy_quantiles": {
            f"{q:g}": float(v)
            for q, v in zip(
                (0.05, 0.25, 0.5, 0.75, 0.95), np.quantile(energy(hold.swift, t), (0.05, 0.25, 0.5, 0.75, 0.95))
            )
        },
    }
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(f"{dataset}{name}{choice.threshold}{t}{created}".encode()).hexdigest()[:8]
    record = CalibrationRecord(
        version=f"cal-{created[:10]}-{name}-{digest}",
        criterion=name,
        threshold=choice.threshold,
        temperature=t,
        target={"kind": target.kind, "value": target.value, "describe": target.describe()},
        confidence=confidence if certify else None,
        dataset=dataset,
        created=created,
        calibration=stats,
        costs_ms=costs_ms or {},
        criteria=[asdict(r) for r in rows],
        rule=rule.to_dict(),
        warnings=scores_warnings(hold, rows, t),
    )
    return record, choice, rows


def evaluate_record(record: CalibrationRecord, scores: Scores) -> dict:
    """Accuracy and Super fraction of the recorded threshold on another split (e.g. test)."""
    pol = policy_from_record(record)
    esc = pol.escalate(scores.policy_scores(pol, record.temperature), record.threshold)
    acc = float(np.mean(np.where(esc, scores.super_ok, scores.swift_ok)))
    return {
        "examples": int(len(scores.labels)),
        "routed_accuracy": acc,
        "super_fraction": float(esc.mean()),
        "swift_accuracy": float(scores.swift_ok.mean()),
        "super_accuracy": float(scores.super_ok.mean()),
    }


def router_for(super_stage: str) -> str:
    """The router that sends Swift's unsure texts to ``super_stage`` (``elang``, or ``elang_<variant>``)."""
    return c.ROUTER_MODEL if super_stage == c.SUPER_MODEL else f"{c.ROUTER_MODEL}_{super_stage}"


def apply_record(repository: Path, record: CalibrationRecord, router: str = c.ROUTER_MODEL) -> Path:
    """Write the record's criterion, threshold, temperature and version into the router config."""
    return apply_common(Path(repository), record.to_record(router))


def oracle_point(scores: Scores) -> tuple[float, float]:
    """(Super fraction, accuracy) of perfect routing: escalate exactly where Swift is wrong and Super right."""
    esc = ~scores.swift_ok & scores.super_ok
    return float(esc.mean()), float(np.mean(scores.swift_ok | scores.super_ok))


def record_policies(record: CalibrationRecord | None = None) -> dict[str, Policy]:
    """:func:`criteria_policies` with the learned rule stored in ``record``, if any."""
    rule = DeferralRule.from_dict(record.rule) if record is not None and record.rule else None
    return criteria_policies(rule)


def policy_from_record(record: CalibrationRecord) -> Policy:
    """The record's criterion as a policy (the learned one rebuilt from its stored rule)."""
    policies = record_policies(record)
    if record.criterion not in policies:
        raise ValueError(
            f"calibration record {record.version} names criterion {record.criterion!r} but holds no rule for it"
        )
    return policies[record.criterion]


def does_not_pay(
    record: CalibrationRecord, rows: list[CriterionRow], scores: Scores, cost_ratio: float | None
) -> str | None:
    """Why the chosen threshold costs at least as much as the Super alone, and what would pay;
    None when it pays (or the costs are unknown).

    Expected compute relative to Super only is ``cost_ratio + share``: Swift runs on every text,
    the Super on the share escalated. A share at or above ``1 - cost_ratio`` does not pay.
    """
    share = record.calibration["super_fraction"]
    if cost_ratio is None or cost_ratio + share < 1.0:
        return None
    most = 1.0 - cost_ratio  # the largest Super share that still pays
    lines = [
        f"the chosen threshold sends {share:.1%} of texts to the Super at a Swift/Super cost ratio of "
        f"{cost_ratio:.3f}: expected compute {cost_ratio + share:.2f}x the Super alone. E-LANG would cost more "
        "than serving the Super alone."
    ]
    cheaper = [r for r in rows if r.fraction_at_target is not None and r.fraction_at_target < most]
    if cheaper:
        best = min(cheaper, key=lambda r: r.fraction_at_target)
        lines.append(
            f"criterion {best.name} met the target at {best.fraction_at_target:.1%} on these texts (point estimate, "
            f"no certificate): try --criterion {best.name}"
        )
    if most <= 0:
        lines.append("the Swift costs as much as the Super: no share pays; serve the Super alone or a cheaper Swift")
    else:
        curve = curves(scores, record.temperature, record_policies(record))
        frac = curve["fractions"]
        acc = curve[record.criterion][frac < most]
        if acc.size:
            reach = float(acc.max())
            drop = (record.calibration["super_accuracy"] - reach) * 100
            lines.append(
                f"below {most:.1%} to the Super ({record.criterion}) the routed accuracy reaches at most {reach:.2%}: "
                f"a target that pays is --max-accuracy-drop {max(drop, 0.0) + 0.05:.2f} (point estimate) or "
                f"--compute-budget {most:.2f}; otherwise serve the Super alone"
            )
    return "\n".join(lines)


def curves(scores: Scores, temperature: float, policies: dict[str, Policy] | None = None) -> dict[str, np.ndarray]:
    """Accuracy at every Super fraction k/n for each criterion (x axis: ``fractions``)."""
    out: dict[str, np.ndarray] = {}
    for name, pol in (policies or record_policies()).items():
        curve = routing_curve(scores.policy_scores(pol, temperature), scores.swift_ok, scores.super_ok, pol)
        out[name] = curve.accuracy
        out["fractions"] = curve.fractions
    return out


def curve_markdown(
    scores: Scores,
    temperature: float,
    cost_ratio: float | None,
    step: float = 0.1,
    policies: dict[str, Policy] | None = None,
) -> str:
    """Accuracy vs Super fraction (and relative compute) per criterion, with reference points."""
    cv = curves(scores, temperature, policies)
    names = [k for k in cv if k != "fractions"]
    n = len(scores.labels)
    head = "| Super fraction | relative compute | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (2 + len(names))]
    for f in np.round(np.arange(0, 1 + 1e-9, step), 3):
        k = int(round(f * n))
        rc = "-" if cost_ratio is None else f"{cost_ratio + f:.3f}"
        lines.append(f"| {f:.0%} | {rc} | " + " | ".join(f"{cv[name][k]:.2%}" for name in names) + " |")
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
    scores: Scores,
    temperature: float,
    cost_ratio: float | None,
    path: Path,
    chosen: tuple[float, float] | None = None,
    policies: dict[str, Policy] | None = None,
) -> Path:
    """PNG: accuracy vs Super fraction (top x axis: relative compute) for each criterion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = curves(scores, temperature, policies)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name in cv:
        if name != "fractions":
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
    head += " | Super share to reach Super's accuracy | Super share the target needs |"
    lines = [head, "|" + "---|" * (4 + len(TABLE_FRACTIONS))]
    for r in rows:
        reach = "never" if r.fraction_for_super_accuracy is None else f"{r.fraction_for_super_accuracy:.1%}"
        at = "not met" if r.fraction_at_target is None else f"{r.fraction_at_target:.1%}"
        lines.append(
            f"| {r.name} | {r.auroc:.3f} | "
            + " | ".join(f"{r.accuracy_at[f'{f:g}']:.2%}" for f in TABLE_FRACTIONS)
            + f" | {reach} | {at} |"
        )
    return "\n".join(lines)


def cached_stage_logits(
    repository: Path,
    stage: str,
    split_name: str,
    ds,
    fingerprint: str,
    cache_dir: Path,
    url: str | None,  # noqa: ANN001
) -> np.ndarray:
    """:func:`stage_logits` cached per (stage model, data split), keyed by the model files' contents
    (ONNX and OpenVINO IR, see :func:`elang.core.identity.file_identity`), the engine, precision and OpenVINO hint, the
    max length and the split."""
    repository = Path(repository)
    h = hashlib.sha256(f"{fingerprint}|{split_name}|{len(ds)}|{url or 'offline'}|{stage}".encode())
    if not url:
        folder, max_length = _stage_dir(repository, stage)
        h.update(str(max_length).encode())
        engine, precision = served_engine(repository, stage)
        h.update(f"{engine}/{precision}".encode())  # bf16 scores are not fp32's
        if engine == "openvino":  # nor are an int8 IR's with its rest in bf16 those with it in fp32
            h.update(PRECISION_HINTS[precision].encode())
        for model_file in sorted(f for f in folder.iterdir() if f.suffix in (".onnx", ".xml", ".bin")):
            h.update(file_identity(model_file))  # the ONNX and an int8 IR: a re-quantized stage is scored anew
    path = Path(cache_dir) / "scores" / f"{stage}-{split_name}-{h.hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    log.info("running %s on %d %s texts", stage, len(ds), split_name)
    logits = stage_logits(repository, stage, ds.texts, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    return logits


def cached_scores(
    repository: Path,
    split_name: str,
    ds,  # noqa: ANN001 - elang.data.datasets.Dataset
    fingerprint: str,
    cache_dir: Path,
    url: str | None,
    super_stage: str = c.SUPER_MODEL,
) -> Scores:
    """Swift and Super logits on one split, each stage cached on its own (see :func:`cached_stage_logits`)."""
    swift, sup = (
        cached_stage_logits(repository, s, split_name, ds, fingerprint, cache_dir, url)
        for s in (c.SWIFT_MODEL, super_stage)
    )
    return Scores(swift, sup, np.asarray(ds.labels), text_lengths(ds.texts))
