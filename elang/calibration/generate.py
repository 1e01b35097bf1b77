"""Calibration of a generating (seq2seq) router: the token-energy aggregators compared, and one
threshold chosen to a target with the same statistical margin as the classifier pair's.

Swift and Super generate every input of a split offline through the repository's own stage
folders (``elang.runtimes.generator``, the code the stages run); the outputs are cached. A word is
"correct" when its output matches one of its references, so the pair's maths applies as is
(``elang.calibration.thresholds``): the routing curve over the aggregate's order, ``choose`` with the
paired Super-minus-routed loss for a WER-increase target, Learn-then-Test certification.

The split is cut as for the pair (:func:`elang.calibration.classify.split_for_fitting`): with
``criterion="auto"`` the seeded fit third picks the aggregator that meets the target there with
the least Super (an accuracy target) or the best WER (a share or compute target), AUROC for
"Swift wrong" breaking ties; the other two thirds choose and certify the threshold.
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
from elang.calibration.classify import split_for_fitting, unfit_reason
from elang.calibration.record import Record
from elang.calibration.record import apply_record as apply_common
from elang.calibration.thresholds import Target, TargetError, auroc, choose, routing_curve
from elang.core.identity import file_identity
from elang.core.routing import (
    LEARNED,
    SEQUENCE_POLICIES,
    DeferralRule,
    Policy,
    fit_sequence_rule,
    get_policy,
    learned_policy,
    stack_tokens,
)
from elang.data.seq2seq import Seq2SeqSet, error_rates, wrong
from elang.runtimes.generator import ONNX_FILES, OnnxSeq2SeqGenerator
from elang.tasks.generate import pad_steps

log = logging.getLogger(__name__)

AGGREGATORS = tuple(SEQUENCE_POLICIES)  # every served aggregate (min-margin needs the stages' TOKEN_MARGIN)
CRITERIA = (*AGGREGATORS, LEARNED)  # and the learned rule, fitted on the calibration split's fit part
MIN_LEARNED_INPUTS = 20


def _needs_margins(name: str) -> bool:
    return bool(getattr(get_policy(name), "needs_margins", False))


def served_aggregators(repository: Path, stages: tuple[str, ...] = ("swift", "super")) -> tuple[str, ...]:
    """The rules the repository's router can serve: min-margin (and the learned rule's margin
    features) only where every stage declares TOKEN_MARGIN; the learned rule always."""
    from elang.repository.config import stages_declare

    margins = stages_declare(Path(repository), stages, c.TOKEN_MARGIN)
    return (*(n for n in AGGREGATORS if margins or not _needs_margins(n)), LEARNED)


def _margins_served(names: tuple[str, ...]) -> bool:
    """Whether the rules ``names`` may read token margins (they include one that needs them)."""
    return any(n in SEQUENCE_POLICIES and _needs_margins(n) for n in names)
SHARES = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class Seq2SeqScores:
    """Both stages' greedy outputs on one split, and Swift's token energies (NaN-padded to ``cap``)."""

    inputs: list[str]
    references: list[list[str]]
    swift_texts: list[str]
    super_texts: list[str]
    swift_energies: np.ndarray  # [n, cap]
    swift_margins: np.ndarray | None = None  # [n, cap] each token's probability margin

    @property
    def swift_tokens(self) -> np.ndarray:
        """[n, cap, 2]: what a sequence policy scores (``elang.core.routing.token_channels``)."""
        return stack_tokens(self.swift_energies, self.swift_margins)

    def rules(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The aggregates among ``names`` these scores can feed (min-margin needs margins; not ``learned``)."""
        return tuple(
            n for n in names if n != LEARNED and (self.swift_margins is not None or not _needs_margins(n))
        )

    @property
    def swift_correct(self) -> np.ndarray:
        return ~wrong(self.swift_texts, self.references)

    @property
    def super_correct(self) -> np.ndarray:
        return ~wrong(self.super_texts, self.references)

    def take(self, idx: np.ndarray) -> Seq2SeqScores:
        pick = [int(i) for i in idx]
        return Seq2SeqScores(
            [self.inputs[i] for i in pick],
            [self.references[i] for i in pick],
            [self.swift_texts[i] for i in pick],
            [self.super_texts[i] for i in pick],
            self.swift_energies[idx],
            None if self.swift_margins is None else self.swift_margins[idx],
        )

    def routed_texts(self, escalate: np.ndarray) -> list[str]:
        return [s if e else w for w, s, e in zip(self.swift_texts, self.super_texts, escalate)]


def stage_folder(repository: Path, stage: str) -> Path:
    folder = Path(repository) / stage / "1"
    if not all((folder / f).is_file() for f in ONNX_FILES):
        raise FileNotFoundError(f"{folder} holds no generating stage (run elang export on a seq2seq checkpoint)")
    return folder


def generate_all(
    folder: Path, inputs: list[str], cap: int, batch: int = 64, desc: str = "generate", progress: bool = True
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Greedy outputs, token energies [n, cap] and token margins [n, cap] of every input, in order."""
    from tqdm import tqdm

    gen = OnnxSeq2SeqGenerator(folder, max_new_tokens=cap)
    texts: list[str] = []
    energies, margins = [], []
    for i in tqdm(range(0, len(inputs), batch), desc=desc, unit="batch", disable=not progress):
        out = gen(inputs[i : i + batch], margins=True)
        texts += out.texts
        energies.append(pad_steps(out.energies, cap, np.nan))
        margins.append(pad_steps(out.margins, cap, np.nan))
    return texts, np.concatenate(energies).astype(np.float32), np.concatenate(margins).astype(np.float32)


def cached_scores(
    repository: Path, split: str, ds: Seq2SeqSet, fingerprint: str, cache_dir: Path, cap: int, progress: bool = True
) -> Seq2SeqScores:
    """Both stages' outputs on ``ds``, cached by the stages' files and the inputs."""
    h = hashlib.sha256(f"{split}:{fingerprint}:{cap}:{len(ds)}:margins".encode())
    for stage in c.STAGES:
        for f in ONNX_FILES:
            h.update(file_identity(stage_folder(repository, stage) / f))
    h.update("\n".join(ds.inputs).encode())
    path = Path(cache_dir) / "seq2seq-scores" / f"{h.hexdigest()[:16]}.json"
    if path.is_file():
        d = json.loads(path.read_text())
        energies = np.array(d["swift_energies"], dtype=np.float32)
        margins = np.array(d["swift_margins"], dtype=np.float32)
        return Seq2SeqScores(ds.inputs, ds.references, d["swift_texts"], d["super_texts"], energies, margins)
    sw_texts, sw_e, sw_m = generate_all(
        stage_folder(repository, "swift"), ds.inputs, cap, desc=f"swift on {split}", progress=progress
    )
    su_texts, _, _ = generate_all(
        stage_folder(repository, "super"), ds.inputs, cap, desc=f"super on {split}", progress=progress
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "swift_texts": sw_texts,
        "super_texts": su_texts,
        "swift_energies": np.where(np.isnan(sw_e), None, sw_e).tolist(),
        "swift_margins": np.where(np.isnan(sw_m), None, sw_m).tolist(),
    }
    path.write_text(json.dumps(payload))
    return Seq2SeqScores(ds.inputs, ds.references, sw_texts, su_texts, sw_e, sw_m)


def measure_costs(repository: Path, inputs: list[str], cap: int, batch: int = 32, rounds: int = 3) -> dict[str, float]:
    """Seconds per input of each stage's generation (best of ``rounds`` over the same batches)."""
    sample = inputs[: batch * 4]
    out = {}
    for stage in c.STAGES:
        gen = OnnxSeq2SeqGenerator(stage_folder(repository, stage), max_new_tokens=cap)
        gen(sample[:batch])  # warm-up
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(0, len(sample), batch):
                gen(sample[i : i + batch])
            best = min(best, (time.perf_counter() - t0) / len(sample))
        out[stage] = best
    return out


@dataclass
class AggregatorRow:
    name: str
    auroc: float  # of the aggregate for "Swift wrong"
    wer_at: dict[float, float]  # routed WER at fixed Super shares
    share_within_half_point: float  # least Super share whose routed WER is within 0.5 pt of Super's


def fit_rule(scores: Seq2SeqScores, margins: bool = True) -> DeferralRule:
    """The learned rule fitted on ``scores`` (token margins among its features where given and ``margins``)."""
    m = scores.swift_margins if margins else None
    return fit_sequence_rule(scores.swift_energies, m, scores.swift_correct, scores.super_correct)


def learned_scores(scores: Seq2SeqScores, folds: int = 2, seed: int = 0, margins: bool = True) -> np.ndarray:
    """P(Super fixes Swift) from the learned rule (:func:`fit_rule`), cross-fitted: each fold is
    scored by a rule fitted on the others, so the curve is not read on the fit's own rows."""
    fold = np.random.default_rng(seed).permutation(len(scores.inputs)) % folds
    out = np.zeros(len(scores.inputs))
    for k in range(folds):
        rule = fit_rule(scores.take(np.flatnonzero(fold != k)), margins)
        test = np.flatnonzero(fold == k)
        out[test] = rule.score(scores.take(test).swift_tokens)
    return out


def learned_unfit(scores: Seq2SeqScores) -> str:
    """Why the learned rule cannot be fitted on ``scores``, or "": it predicts that the Super fixes
    Swift's output, and needs inputs where it does and where it does not."""
    n = len(scores.inputs)
    if n < MIN_LEARNED_INPUTS:
        return f"{n} inputs to fit it on, fewer than {MIN_LEARNED_INPUTS}"
    return unfit_reason(scores.swift_correct, scores.super_correct, "inputs")


def _offline_rules(scores: Seq2SeqScores, margins: bool = True) -> list[tuple[str, np.ndarray]]:
    """Rules read on the same curve beside the served aggregates: the learned rule on token
    features (2-fold cross-fitted on these inputs) and the oracle (Swift wrong, Super right first)."""
    rules = []
    if not learned_unfit(scores):
        rules.append(("learned (2-fold cross-fitted)", learned_scores(scores, margins=margins)))
    oracle = (~scores.swift_correct & scores.super_correct).astype(np.float64)
    rules.append(("oracle", oracle - 0.5 * (scores.swift_correct & ~scores.super_correct)))
    return rules


def aggregator_table(
    scores: Seq2SeqScores, names: tuple[str, ...] = AGGREGATORS, offline: bool = True
) -> list[AggregatorRow]:
    """Each served aggregator's routing curve (and, with ``offline``, the offline rules' and the oracle's)."""
    sw, su = scores.swift_correct, scores.super_correct
    rules = [(name, get_policy(name).score(scores.swift_tokens)) for name in scores.rules(names)]
    if offline:
        rules += _offline_rules(scores, _margins_served(names))
    rows = []
    for name, s in rules:
        curve = routing_curve(s, sw, su, _ABOVE)
        wer = 1 - curve.accuracy
        within = np.flatnonzero(wer <= (1 - su.mean()) + 0.005 + 1e-12)
        rows.append(
            AggregatorRow(
                name,
                auroc(s, ~sw),
                {f: float(wer[int(round(f * curve.n))]) for f in SHARES},
                float(within[0] / curve.n) if within.size else 1.0,
            )
        )
    return rows


# Every rule above escalates its highest scores first (the sequence policies all do).
_ABOVE = get_policy("mean")


def table_markdown(rows: list[AggregatorRow], scores: Seq2SeqScores) -> str:
    sw, su = scores.swift_correct.mean(), scores.super_correct.mean()
    oracle = float((~scores.swift_correct & scores.super_correct).mean())
    head = " / ".join(f"{int(f * 100)}%" for f in SHARES)
    lines = [
        f"Swift WER {100 * (1 - sw):.2f}%, Super WER {100 * (1 - su):.2f}%, oracle routing needs {100 * oracle:.1f}% "
        f"on Super ({len(scores.inputs)} inputs).",
        "",
        f'| rule | AUROC "Swift wrong" | WER % at {head} Super | Super share within 0.5 pt of Super |',
        "|---|---|---|---|",
    ]
    for r in rows:
        wers = " / ".join(f"{100 * r.wer_at[f]:.2f}" for f in SHARES)
        lines.append(f"| {r.name} | {r.auroc:.3f} | {wers} | {100 * r.share_within_half_point:.1f}% |")
    return "\n".join(lines)


def pick_aggregator(
    fit: Seq2SeqScores, target: Target, cost_ratio: float | None, names: tuple[str, ...] = AGGREGATORS
) -> str:
    """The aggregator whose point-estimate choice on ``fit`` serves ``target`` best.

    An accuracy target: the least Super share that meets it; a share or compute target: the best
    routed accuracy at it. AUROC for "Swift wrong" breaks ties and decides when no aggregator meets
    the target on ``fit`` (the held-out choice then reports why). AUROC alone can favour an
    aggregator that separates "Swift wrong" well overall but not where the threshold lands.
    """
    sw, su = fit.swift_correct, fit.super_correct
    best: tuple[float, float, str] | None = None
    candidates = [(name, get_policy(name).score(fit.swift_tokens)) for name in fit.rules(names)]
    if LEARNED in names and not learned_unfit(fit):  # read cross-fitted: not on the rows it was fitted on
        candidates.append((LEARNED, learned_scores(fit, margins=_margins_served(names))))
    for name, s in candidates:
        pol = _ABOVE  # every candidate escalates its highest scores
        curve = routing_curve(s, sw, su, pol)
        try:
            ch = choose(curve, target, pol, float(su.mean()), cost_ratio)
            cost = ch.fraction if target.kind in ("accuracy", "accuracy_drop") else -ch.accuracy
        except TargetError:
            cost = float("inf")
        key = (cost, -auroc(s, ~sw), name)
        if best is None or key < best:
            best = key
    return best[2]


@dataclass
class Seq2SeqRecord:
    version: str
    criterion: str
    threshold: float
    target: dict
    calibration: dict  # on the held-out part: share, WER, Super WER, certified bound
    aggregators: list[dict]
    cost_ratio: float | None
    data_fingerprint: str
    created: str
    task: str = c.TASK_GENERATE
    temperature: float = 1.0
    notes: dict = field(default_factory=dict)
    rule: dict | None = None  # the learned rule (elang.core.routing.DeferralRule), when it is the criterion

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def policy(self) -> Policy:
        """The record's criterion as a policy (the learned one rebuilt from its stored rule)."""
        if self.criterion == LEARNED:
            if not self.rule:
                raise ValueError("a learned calibration record holds no rule")
            return learned_policy(DeferralRule.from_dict(self.rule))
        return get_policy(self.criterion)

    def to_record(self, router: str = c.ROUTER_MODEL) -> Record:
        """The common record (``elang.calibration.record``) with this one as its payload."""
        return Record(
            c.TASK_GENERATE, router, self.version, self.criterion, [self.threshold], [self.temperature],
            self.target, self.calibration.get("confidence"), self.calibration, self.data_fingerprint, self.created,
            payload=json.loads(self.to_json()),
        )  # fmt: skip


def calibrate(
    scores: Seq2SeqScores,
    target: Target,
    criterion: str = "auto",
    confidence: float | None = 0.9,
    cost_ratio: float | None = None,
    fingerprint: str = "",
    seed: int = 0,
    names: tuple[str, ...] = AGGREGATORS,
) -> tuple[Seq2SeqRecord, list[AggregatorRow]]:
    """Pick the aggregator (``auto``: :func:`pick_aggregator` on the fit third) and the threshold to ``target``."""
    target.validate()
    n = len(scores.inputs)
    if n < 30:
        raise ValueError(f"calibration needs at least 30 inputs, got {n}")
    fit_idx, hold_idx = split_for_fitting(n, seed=seed)
    fit, hold = scores.take(fit_idx), scores.take(hold_idx)
    if criterion == "auto":
        criterion = pick_aggregator(fit, target, cost_ratio, names)
    rule = None
    if criterion == LEARNED:
        unfit = learned_unfit(fit)
        if unfit:
            raise TargetError(
                f"criterion learned cannot be fitted: {unfit}; choose an aggregate (mean, min-margin, ...) or "
                "calibrate on more inputs"
            )
        rule = fit_rule(fit, _margins_served(names))
        pol = learned_policy(rule)
    else:
        pol = get_policy(criterion)
    if not pol.sequence:
        raise ValueError(
            f"a generating router routes on an aggregate of token energies or the learned rule, not {criterion!r}"
        )
    if criterion not in names and criterion in SEQUENCE_POLICIES:
        raise ValueError(
            f"criterion {criterion} scores token margins (TOKEN_MARGIN), which this repository's stages do "
            "not answer: export them again with this version of elang"
        )
    s = pol.score(hold.swift_tokens)
    sw, su = hold.swift_correct, hold.super_correct
    curve = routing_curve(s, sw, su, pol)
    choice = choose(curve, target, pol, float(su.mean()), cost_ratio, confidence, sw, su)
    rows = aggregator_table(scores, names)
    stamp = datetime.now(timezone.utc)
    lb, relative = choice.lower_bound, target.kind == "accuracy_drop"
    record = Seq2SeqRecord(
        version=f"{stamp:%Y%m%dT%H%M%S}-{criterion}-{target.kind}{target.value:g}",
        criterion=criterion,
        threshold=float(choice.threshold),
        target={"kind": target.kind, "value": target.value, "confidence": confidence},
        calibration={
            "inputs_held_out": len(hold.inputs),
            "super_share": choice.fraction,
            "wer": 1 - choice.accuracy,
            "super_wer": float(1 - su.mean()),
            "swift_wer": float(1 - sw.mean()),
            # The certificate bounds what the target names: routed WER (an accuracy target), or routed
            # minus Super WER on the same inputs (an accuracy-drop target). None without one.
            "certified_wer_bound": None if lb is None or relative else 1 - lb,
            "certified_wer_increase_bound": -lb if lb is not None and relative else None,
        },
        aggregators=[asdict(r) for r in rows],
        cost_ratio=cost_ratio,
        data_fingerprint=fingerprint,
        created=stamp.isoformat(),
        rule=None if rule is None else rule.to_dict(),
    )
    return record, rows


def evaluate(record: Seq2SeqRecord, scores: Seq2SeqScores) -> dict:
    """How the record's threshold lands on another split: share, WER and PER, against Super and Swift."""
    pol = record.policy()
    esc = pol.escalate(pol.score(scores.swift_tokens), record.threshold)
    routed = error_rates(scores.routed_texts(esc), scores.references)
    sup = error_rates(scores.super_texts, scores.references)
    swi = error_rates(scores.swift_texts, scores.references)
    return {
        "inputs": len(scores.inputs),
        "super_share": float(esc.mean()),
        "wer": routed.wer,
        "per": routed.per,
        "super_wer": sup.wer,
        "super_per": sup.per,
        "swift_wer": swi.wer,
        "swift_per": swi.per,
    }


def apply_record(repository: Path, record: Seq2SeqRecord, router: str = c.ROUTER_MODEL) -> Path:
    """Write the record's criterion, threshold and version into the generating router's config."""
    return apply_common(Path(repository), record.to_record(router))
