"""The demo pipeline end to end: train (tiny models, real tweets) -> export -> serve -> compare."""

from __future__ import annotations

import json

import pytest

from elang.data.datasets import default_splits
from elang.export.classify.tiny import TINY_SUPER, TINY_SWIFT, make_tiny_checkpoint
from elang.export.classify.train import Recipe
from elang.export.pipeline import demo_pipeline

pytestmark = pytest.mark.integration


def test_demo_pipeline_on_tiny_models_and_real_rows(tmp_path, capsys):
    splits = default_splits(sizes=(300, 100, 150))
    corpus = splits.train.texts
    recipes = {
        "swift": Recipe(base=str(make_tiny_checkpoint(tmp_path / "s", TINY_SWIFT, corpus)), epochs=1, max_length=48),
        "super": Recipe(base=str(make_tiny_checkpoint(tmp_path / "p", TINY_SUPER, corpus)), epochs=2, max_length=48),
    }
    cache, work = tmp_path / "cache", tmp_path / "work"
    table = demo_pipeline(splits, recipes, cache, work, concurrency=2, distill=True)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [line.split("|")[1].strip() for line in lines[1:]] == ["Swift only", "Super only", "E-LANG (energy)"]
    elang_row = lines[3].split("|")
    frac = float(elang_row[3].strip().rstrip("%")) / 100
    assert 0.15 <= frac <= 0.45  # the default threshold sends ~30% of validation to super
    for line in lines[1:]:
        acc = float(line.split("|")[2].strip().rstrip("%"))
        assert 0 <= acc <= 100
    out = capsys.readouterr().out
    assert "parity ONNX Runtime vs PyTorch" in out
    # the second run is cached: no training, no export
    metrics = [json.loads(p.read_text()) for p in (cache / "train").glob("*/metrics.json")]
    assert len(metrics) == 2 and all(m["splits"]["train"] == 300 for m in metrics)
    # the Swift learned the trained Super's soft labels (the headline's pair), the Super the labels only
    distilled = [m for m in metrics if m.get("distilled_from")]
    assert len(distilled) == 1 and distilled[0]["recipe"]["base"] == recipes["swift"].base
    assert "swift: distilled from the super" in out
    super_ckpt = next(p.parent for p in (cache / "train").glob("*/metrics.json") if not json.loads(p.read_text()).get("distilled_from"))
    assert distilled[0]["distilled_from"] == str(super_ckpt / "best")
    again = demo_pipeline(splits, recipes, cache, work, limit=20, concurrency=2, distill=True)
    out = capsys.readouterr().out
    assert "parity" not in out  # nothing re-exported
    assert "(20 test texts)" in again
