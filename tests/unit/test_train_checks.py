"""Training on a user's small data: the collapse warning and the early-stopping options (issue 11, part)."""

from __future__ import annotations

import numpy as np

from elang.export.classify.train import collapse_warning

NAMES = ["negative", "neutral", "positive"]


def _logits(pred: list[int]) -> np.ndarray:
    out = np.zeros((len(pred), 3), dtype=np.float32)
    out[np.arange(len(pred)), pred] = 1.0
    return out


def test_a_model_that_always_answers_the_majority_class_is_flagged():
    labels = np.array([2] * 66 + [0] * 20 + [1] * 14)
    warning = collapse_warning(_logits([2] * 100), labels, NAMES)
    assert warning and "single class ('positive')" in warning and "--patience" in warning


def test_no_better_than_the_majority_share_is_flagged_even_with_several_classes():
    labels = np.array([2] * 66 + [0] * 34)
    pred = [2] * 60 + [0] * 6 + [2] * 34  # 60 right of 66, 0 of 34: 60% < 66%
    warning = collapse_warning(_logits(pred), labels, NAMES)
    assert warning and "majority class 'positive' (66.00%)" in warning and warning.startswith("on validation")


def test_a_model_that_learnt_something_is_not_flagged():
    labels = np.array([2] * 66 + [0] * 34)
    pred = [2] * 66 + [0] * 30 + [2] * 4
    assert collapse_warning(_logits(pred), labels, NAMES) is None
    assert collapse_warning(_logits([]).reshape(0, 3), np.array([], dtype=int), NAMES) is None


def test_patience_and_evals_per_epoch_reach_the_recipe():
    from elang.cli import build_parser, recipe_from_args

    args = build_parser().parse_args(
        ["train", "--model", "some/checkpoint", "--patience", "3", "--evals-per-epoch", "4"]
    )
    recipe = recipe_from_args(args)
    assert (recipe.patience, recipe.evals_per_epoch) == (3, 4)
    default = recipe_from_args(build_parser().parse_args(["train", "--preset", "swift"]))
    assert (default.patience, default.evals_per_epoch) == (1, 1)  # presets (and their cached runs) unchanged


def test_the_warning_is_against_the_evaluated_splits_own_majority():
    """A Swift at 64.3% on a test split whose majority is 65.3% is flagged on test, naming the split."""
    labels = np.array([2] * 653 + [0] * 200 + [1] * 147)
    pred = [2] * 600 + [0] * 53 + [0] * 43 + [2] * 157 + [0] * 147  # right: 600 + 43 = 643 of 1000
    w = collapse_warning(_logits(pred), labels, NAMES, "test")
    assert w.startswith("on test") and "(64.30%)" in w and "(65.30%)" in w


def test_small_data_extends_the_epochs_to_min_steps_and_large_data_keeps_the_recipes():
    from elang.export.classify.train import PRESETS, extended_epochs

    swift = PRESETS["swift"]  # 4 epochs, batch 32, at least 200 steps
    assert extended_epochs(swift, steps_per_epoch=188) == swift.epochs  # the default corpus: 6000 texts
    assert extended_epochs(swift, steps_per_epoch=14) == 15  # 420 texts: 14 steps an epoch
    assert extended_epochs(PRESETS["super"], steps_per_epoch=14) == 15
    assert extended_epochs(swift, steps_per_epoch=0) == 200  # never a division by zero


def test_skewed_training_labels_suggest_class_weights():
    from elang.export.classify.train import skew_note

    skewed = np.array([2] * 65 + [0] * 20 + [1] * 15)
    assert "--class-weights" in skew_note(skewed, NAMES, class_weights=False)
    assert skew_note(skewed, NAMES, class_weights=True) is None
    assert skew_note(np.array([0, 1, 2] * 30), NAMES, class_weights=False) is None
