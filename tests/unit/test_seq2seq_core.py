"""Seq2seq pieces without a server: CMUdict parsing and splits, WER/PER, the token-energy
aggregators of the routing core, and the generating router's settings and outputs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from elang import contract as c
from elang.core.execution import Job
from elang.core.routing import cascade_offline, get_policy, is_sequence_policy, threshold_for_fraction
from elang.core.settings import RouterSettings
from elang.core.texts import InputError
from elang.data.datasets import DatasetError
from elang.data.seq2seq import edit_distance, error_rates, file_splits, g2p_splits, parse_cmudict, wrong
from elang.tasks.generate import pad_steps, request_max_new_tokens

NAN = np.nan


def test_cmudict_variants_join_their_word_and_comments_go():
    d = parse_cmudict("read R EH1 D\nread(2) R IY1 D\naalborg AO1 L B AO0 R G # place, danish\n\n")
    assert d == {"read": ["R EH1 D", "R IY1 D"], "aalborg": ["AO1 L B AO0 R G"]}


def test_g2p_splits_are_seeded_disjoint_by_word_and_keep_every_pronunciation():
    a, b = g2p_splits(0, (50, 60, 70)), g2p_splits(0, (50, 60, 70))
    assert a.fingerprint == b.fingerprint and a.test.inputs == b.test.inputs
    assert g2p_splits(1, (50, 60, 70)).fingerprint != a.fingerprint
    sets = [set(s.inputs) for s in (a.train, a.validation, a.test, a.calibration)]
    assert sum(len(s) for s in sets) == len(set().union(*sets)) > 100_000
    assert (len(a.validation), len(a.test), len(a.calibration)) == (50, 60, 70)
    assert any(len(r) > 1 for r in a.train.references)


def test_a_users_file_groups_targets_by_input_and_names_bad_rows(tmp_path):
    f = tmp_path / "pairs.csv"
    f.write_text("src,tgt\n" + "".join(f"w{i},T {i}\n" for i in range(20)) + "w1,T one\n")
    s = file_splits(f, "src", "tgt")
    assert len(s.train) + len(s.validation) + len(s.test) + len(s.calibration) == 20
    refs = dict(zip(s.train.inputs + s.test.inputs + s.validation.inputs + s.calibration.inputs,
                    s.train.references + s.test.references + s.validation.references + s.calibration.references))  # fmt: skip
    assert refs["w1"] == ["T 1", "T one"]
    with pytest.raises(DatasetError, match="no column 'target'"):
        file_splits(f, "src")
    f.write_text("input,target\na,B\n,C\n")
    with pytest.raises(DatasetError, match="row 2"):
        file_splits(f)


def test_wer_counts_any_reference_and_per_uses_the_closest():
    assert edit_distance("a b c".split(), "a c".split()) == 1
    r = error_rates(["K AE1 T", "D AO1 G", "X"], [["K AE1 T"], ["D AA1 G", "D AO1 G"], ["Y Z"]])
    assert r.wer == pytest.approx(1 / 3) and r.per == pytest.approx(2 / (3 + 3 + 2))
    assert wrong(["a", "b"], [["a"], ["c"]]).tolist() == [False, True]
    with pytest.raises(ValueError):
        error_rates([], [])


def test_token_energy_aggregators_skip_padding():
    e = np.array([[-3.0, -1.0, NAN], [-2.0, -2.0, -5.0], [NAN, NAN, NAN]])
    score = {name: get_policy(name).score(e) for name in ("first", "mean", "max", "sum", "quantile:0.5")}
    np.testing.assert_allclose(score["first"][:2], [-3, -2])
    np.testing.assert_allclose(score["mean"][:2], [-2, -3])
    np.testing.assert_allclose(score["max"][:2], [-1, -2])
    np.testing.assert_allclose(score["sum"][:2], [-4, -9])
    np.testing.assert_allclose(score["quantile:0.5"][:2], [-2, -2])
    assert all(np.isnan(s[2]) for s in score.values())  # no tokens: NaN, which always escalates
    pol = get_policy("mean")
    assert pol.escalate(score["mean"], -2.5).tolist() == [True, False, True]
    assert is_sequence_policy("quantile:0.75") and not is_sequence_policy("energy")
    with pytest.raises(ValueError, match="quantile:Q"):
        get_policy("quantile:2")
    with pytest.raises(ValueError, match="known policies"):
        get_policy("median")


def test_the_offline_cascade_routes_sequences_with_the_same_core():
    swift = np.array([[-5.0, -4.0, NAN], [-1.0, -0.5, -0.2]])
    super_ = np.array([[-6.0, NAN, NAN], [-7.0, -7.0, NAN]])
    route, _, scores = cascade_offline(np.stack([swift, super_], 1), get_policy("mean"), -3.0)
    assert route.tolist() == [0, 1] and scores[0] == pytest.approx(-4.5)
    thr = threshold_for_fraction(get_policy("max").score(swift), 0.5, get_policy("max"))
    assert get_policy("max").escalate(get_policy("max").score(swift), thr).tolist() == [False, True]


def _settings(**kw) -> RouterSettings:
    base = {c.PARAM_TASK: "generate", c.PARAM_POLICY: "mean", c.PARAM_THRESHOLD: "-2", c.PARAM_MAX_NEW_TOKENS: "6"}
    return RouterSettings.from_parameters({**base, **kw})


def test_generate_router_settings_refuse_mismatched_policies_and_caps():
    s = _settings()
    assert s.task == c.TASK_GENERATE and s.max_new_tokens == 6
    with pytest.raises(ValueError, match="aggregate of token energies"):
        _settings(**{c.PARAM_POLICY: "energy"})
    with pytest.raises(ValueError, match="a classifier policy"):
        RouterSettings.from_parameters({c.PARAM_POLICY: "mean"})
    with pytest.raises(ValueError, match="max_new_tokens >= 1"):
        _settings(**{c.PARAM_MAX_NEW_TOKENS: "0"})
    assert request_max_new_tokens(s, {}) == 6 and request_max_new_tokens(s, {"max_new_tokens": 3}) == 3
    assert request_max_new_tokens(s, {"max_new_tokens": 99}) == 6
    for bad in (0, "x", 2.5, True):
        with pytest.raises(InputError, match="max_new_tokens"):
            request_max_new_tokens(s, {"max_new_tokens": bad})


def test_stage_calls_and_answers_of_a_generate_router():
    s = _settings()
    texts = np.array([[b"a"], [b"b"]], dtype=np.object_)
    tensors, wanted = s.spec.stage_call(s, "swift", {c.TEXT: texts, c.MAX_NEW_TOKENS: np.array([6, 2])})
    assert tensors[c.MAX_NEW_TOKENS].tolist() == [[6], [2]] and wanted[0] == c.OUTPUT_TEXT
    out = s.spec.stage_answer(
        s,
        {
            c.OUTPUT_TEXT: np.array([[b"K"], [b"L M"]], dtype=np.object_),
            c.TOKEN_IDS: np.array([[5, 1, 0], [6, 7, 1]]),
            c.TOKEN_ENERGY: np.array([[-1.0, -2.0, NAN], [-1.0, -1.0, -1.0]], dtype=np.float32),
            c.NUM_TOKENS: np.array([[2], [3]], dtype=np.int32),
        },
    )
    # [rows, cap, 2]: energies, and NaN margins from a stage that answers none
    assert out.logits.shape == (2, 6, 2) and np.isnan(out.logits[0, 2:, 0]).all() and np.isnan(out.logits[..., 1]).all()
    assert c.TOKEN_MARGIN not in wanted  # not asked of stages that may not declare it
    marg = replace(s, stage_margins=True)
    caps = {c.TEXT: texts, c.MAX_NEW_TOKENS: np.array([6, 2])}
    assert c.TOKEN_MARGIN in marg.spec.stage_call(marg, "swift", caps)[1]
    assert c.TOKEN_MARGIN not in marg.spec.stage_call(marg, "super", caps)[1]  # the last stage's go unscored
    with_margins = s.spec.stage_answer(
        s,
        {
            c.OUTPUT_TEXT: np.array([[b"K"], [b"L M"]], dtype=np.object_),
            c.TOKEN_IDS: np.array([[5, 1, 0], [6, 7, 1]]),
            c.TOKEN_ENERGY: np.array([[-1.0, -2.0, NAN], [-1.0, -1.0, -1.0]], dtype=np.float32),
            c.TOKEN_MARGIN: np.array([[0.9, 0.2, NAN], [0.5, 0.6, 0.7]], dtype=np.float32),
            c.NUM_TOKENS: np.array([[2], [3]], dtype=np.int32),
        },
    )
    min_margin = get_policy("min-margin").score(with_margins.logits)
    assert np.allclose(min_margin, [0.8, 0.5])  # 1 - the least margin
    assert np.allclose(get_policy("mean").score(with_margins.logits), [-1.5, -1.0])  # energies untouched
    with pytest.raises(ValueError, match="TOKEN_MARGIN"):
        get_policy("min-margin").score(out.logits)  # a stage without margins: said, not guessed
    job = Job(texts, [-2.0], inputs={c.MAX_NEW_TOKENS: np.array([6, 2])})
    job.logits, job.outputs, job.route, job.scores = out.logits, out.outputs, np.array([0, 1]), np.array([-1.5, -1.0])
    res = s.spec.outputs(s, job)
    assert res[c.TOKEN_ENERGY].shape == (2, 3) and res[c.TOKEN_IDS].tolist() == [[5, 1, 0], [6, 7, 1]]
    assert res[c.OUTPUT_TEXT][:, 0].tolist() == [b"K", b"L M"] and res[c.ROUTE].ravel().tolist() == [0, 1]
    assert pad_steps(np.zeros((1, 4)), 2, 0).shape == (1, 2)
    with pytest.raises(ValueError, match="rows for 2 texts"):
        Job(texts, [0.0], inputs={c.MAX_NEW_TOKENS: np.array([1])})


def test_auto_picks_the_aggregator_that_meets_the_target_with_least_super_not_the_best_auroc():
    from elang.calibration.generate import Seq2SeqScores, pick_aggregator
    from elang.calibration.thresholds import Target, auroc

    n, bad = 100, list(range(20))  # Swift is wrong on rows 0-19, the Super always right
    first = np.zeros(n)
    first[bad[:19]] = 10 + np.arange(19)  # "first" ranks 19 wrong rows on top ...
    first[bad[19]] = -100  # ... and one below every right row: it needs every row on Super
    first[20:] = np.linspace(0, 1, 80)
    second = np.full(n, -100.0)
    second[bad] = 50 + np.arange(20)  # "max" ranks all 20 wrong rows behind only 5 right ones: 25% on Super
    second[20:25] = 100
    scores = Seq2SeqScores(
        [f"w{i}" for i in range(n)],
        [["B"]] * n,
        ["A" if i < 20 else "B" for i in range(n)],
        ["B"] * n,
        np.stack([first, second], axis=1).astype(np.float32),
    )
    wrong_rows = ~scores.swift_correct
    assert auroc(first, wrong_rows) > auroc(np.maximum(first, second), wrong_rows)  # AUROC would pick first
    names = ("first", "max")
    assert pick_aggregator(scores, Target("accuracy_drop", 0.5), None, names) == "max"
    # a share target: the better WER at that share (max: 15 of 20 wrong rows fixed at 20%; first: 19)
    assert pick_aggregator(scores, Target("super_fraction", 0.2), None, names) == "first"


def test_the_margin_rule_and_the_offline_rules_read_margins_and_the_oracle_needs_only_the_words_the_super_fixes():
    from elang.calibration.generate import Seq2SeqScores, aggregator_table
    from elang.runtimes.generator import token_margins

    assert token_margins(np.log(np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))) == pytest.approx([0.5, 0.0])
    rng = np.random.default_rng(0)
    n = 200
    swift_ok = rng.random(n) > 0.3
    super_ok = swift_ok | (rng.random(n) > 0.5)  # the Super fixes about half of Swift's errors
    energies = rng.normal(size=(n, 4)).astype(np.float32)
    margins = np.where(swift_ok[:, None], 0.9, 0.1) + 0.05 * rng.random((n, 4))  # low margin: Swift wrong
    scores = Seq2SeqScores(
        [f"w{i}" for i in range(n)],
        [["B"]] * n,
        ["B" if ok else "A" for ok in swift_ok],
        ["B" if ok else "C" for ok in super_ok],
        energies,
        margins.astype(np.float32),
    )
    rows = {r.name: r for r in aggregator_table(scores)}
    fixes = float((~swift_ok & super_ok).mean())
    assert rows["oracle"].share_within_half_point <= fixes + 1e-9  # never more than the fixable words
    assert rows["min-margin"].auroc > 0.99  # the served margin rule separates Swift's errors here
    assert rows["learned (2-fold cross-fitted)"].auroc > 0.95  # cross-fitted on the margin features
    assert rows["mean"].auroc < 0.7  # the energies are noise here
    # scores without margins (an older stage's) offer no margin rule rather than failing
    bare = Seq2SeqScores(scores.inputs, scores.references, scores.swift_texts, scores.super_texts, energies)
    assert "min-margin" not in {r.name for r in aggregator_table(bare)}


def test_stress_free_rates_drop_only_the_stress_digits():
    from elang.data.seq2seq import error_rates, stress_free_rates, strip_stress

    assert strip_stress("HH AH0 L OW1") == "HH AH L OW"
    assert strip_stress("K2 T 10") == "K T 10"  # a trailing digit after a letter only
    preds, refs = ["HH AH1 L OW1", "K AE1 T"], [["HH AH0 L OW1"], ["K AE1 T"]]
    assert error_rates(preds, refs).wer == 0.5  # stress wrong on one word
    assert stress_free_rates(preds, refs).wer == 0.0


def _fixable_scores(n: int = 600, seed: int = 0):
    """Synthetic scores where a low margin marks Swift's errors and a high first-token energy marks
    the errors the Super fixes: only a rule on both finds the fixable words."""
    from elang.calibration.generate import Seq2SeqScores

    rng = np.random.default_rng(seed)
    swift_ok = rng.random(n) > 0.4
    fixes = ~swift_ok & (rng.random(n) > 0.6)
    super_ok = swift_ok | fixes
    energies = rng.normal(size=(n, 5))
    energies[:, 0] += np.where(fixes, 2.5, 0.0)
    energies[rng.random(n) > 0.5, 4] = np.nan  # rows of different lengths
    margins = np.where(swift_ok[:, None], 0.8, 0.2) + 0.1 * rng.random((n, 5))
    margins[np.isnan(energies)] = np.nan
    return Seq2SeqScores(
        [f"w{i}" for i in range(n)],
        [["B"]] * n,
        ["B" if ok else "A" for ok in swift_ok],
        ["B" if ok else "C" for ok in super_ok],
        energies.astype(np.float32),
        margins.astype(np.float32),
    )


def test_the_learned_sequence_rule_is_fitted_recorded_and_rebuilt_with_the_same_scores():
    from elang.calibration.generate import CRITERIA, Seq2SeqRecord, calibrate, evaluate
    from elang.calibration.thresholds import Target, TargetError
    from elang.core.routing import DeferralRule, learned_policy, sequence_feature_names

    scores = _fixable_scores()
    target = Target("accuracy_drop", 0.5)
    record, _ = calibrate(scores, target, "learned", names=CRITERIA)
    assert record.criterion == "learned" and record.rule["inputs"] == "tokens"
    assert record.rule["features"] == sequence_feature_names(True)
    pol = record.policy()
    assert pol.sequence and not pol.uses_lengths
    again = Seq2SeqRecord(**{**record.__dict__})
    np.testing.assert_allclose(again.policy().score(scores.swift_tokens), pol.score(scores.swift_tokens))
    # the rule finds the fixable words: at the share they need (16%), it routes to a lower WER than
    # the margin rule, which finds Swift's errors but not which of them the Super fixes
    share = Target("super_fraction", 0.16)
    learned, _ = calibrate(scores, share, "learned", names=CRITERIA)
    margin, _ = calibrate(scores, share, "min-margin", names=CRITERIA)
    assert learned.calibration["wer"] < margin.calibration["wer"] - 0.03
    assert calibrate(scores, share, "auto", names=CRITERIA)[0].criterion == "learned"
    ev = evaluate(record, scores)
    assert ev["super_share"] == pytest.approx(float(pol.escalate(pol.score(scores.swift_tokens), record.threshold).mean()))
    # a rule that reads margins refuses scores without them, naming TOKEN_MARGIN
    with pytest.raises(ValueError, match="TOKEN_MARGIN"):
        pol.score(scores.swift_energies)
    # without margin rules served, the rule is fitted on token energies alone
    names = tuple(n for n in CRITERIA if n != "min-margin")
    bare, _ = calibrate(scores, target, "learned", names=names)
    assert bare.rule["features"] == sequence_feature_names(False)
    learned_policy(DeferralRule.from_dict(bare.rule)).score(scores.swift_energies)  # energies suffice
    # malformed rules and unfit data are refused by name
    with pytest.raises(ValueError, match="features"):
        DeferralRule.from_dict({**record.rule, "features": ["energy_mean"]})
    with pytest.raises(ValueError, match="shapes"):
        DeferralRule.from_dict({**record.rule, "weights": [0.0]})
    never = _fixable_scores()
    never.super_texts[:] = never.swift_texts  # the Super fixes nothing
    with pytest.raises(TargetError, match="never fixes"):
        calibrate(never, Target("super_fraction", 0.3), "learned", names=CRITERIA)
