"""Training on a user's small, imbalanced file of long texts: the collapse warning fires when the
model learns nothing and stays quiet when the documented options make it learn (issue 11)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from elang.export.classify.tiny import TinySpec, make_tiny_checkpoint

WORDS = "the a service order delivery staff room price time place food day night week month".split()
CUE = {"positive": "wonderful", "negative": "terrible", "neutral": "average"}


def _review(rng: random.Random, label: str) -> str:
    filler = [rng.choice(WORDS) for _ in range(rng.randint(40, 90))]
    filler.insert(rng.randint(0, 10), CUE[label])  # the cue sits early, inside any max length
    return " ".join(filler)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    rng = random.Random(0)
    labels = ["positive"] * 130 + ["negative"] * 45 + ["neutral"] * 25  # 65% positive
    rng.shuffle(labels)
    rows = [(_review(rng, lab), lab) for lab in labels]
    folder = tmp_path_factory.mktemp("small")
    data = folder / "reviews.csv"
    data.write_text("review,stars\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    spec = TinySpec(layers=1, hidden=32, vocab_size=200, seed=3, labels=("negative", "neutral", "positive"))
    ckpt = make_tiny_checkpoint(folder / "tiny", spec, corpus=[t for t, _ in rows])
    return data, ckpt


def _train(elang_cli, small_data, tmp_path, *extra):
    data, ckpt = small_data
    common = ["train", "--model", ckpt, "--data", data, "--text-column", "review", "--label-column", "stars"]
    return elang_cli(*common, "--cache-dir", tmp_path / "cache", *extra, timeout=900)


def test_a_model_that_learns_nothing_is_flagged(elang_cli, small_data, tmp_path):
    out = _train(elang_cli, small_data, tmp_path, "--epochs", "1", "--lr", "1e-9")
    assert out.returncode == 0, out.stderr
    assert "WARNING" in out.stderr and ("single class" in out.stderr or "majority class" in out.stderr)
    # The split sizes and where they came from, and the max length read from the data, are printed.
    assert "train 120 / validation 20 / test 40 / calibration 20 (seeded shuffle" in out.stdout
    assert "max length: 96 tokens (95th percentile" in out.stdout


def test_the_documented_options_train_above_the_majority_baseline(elang_cli, small_data, tmp_path):
    args = ["--epochs", "40", "--lr", "3e-3", "--class-weights", "--patience", "4", "--evals-per-epoch", "2"]
    out = _train(elang_cli, small_data, tmp_path, *args)
    assert out.returncode == 0, out.stderr
    # No collapse warning from elang (third-party libraries may warn about their own matters).
    assert "WARNING:" not in out.stderr and "WARNING elang" not in out.stderr, out.stderr
    assert "single class" not in out.stderr and "majority class" not in out.stderr, out.stderr
    ckpt = Path(out.stdout.split("checkpoint ", 1)[1].split()[0])
    metrics = json.loads((ckpt.parent / "metrics.json").read_text())
    assert metrics["validation_accuracy"] > 0.75  # the majority class is 65% of the file
    assert metrics["recipe"]["class_weights"] is True
    # The data options are remembered with the checkpoint, for export, calibrate and bench.
    remembered = json.loads((ckpt / "data.json").read_text())
    assert remembered["label_column"] == "stars" and remembered["fingerprint"] == metrics["data_fingerprint"]


def test_a_classifier_run_killed_between_evaluations_resumes_at_its_step(labelled_csv, tmp_path, monkeypatch):
    """State is saved between evaluations too (save_every_s): a run killed mid-epoch resumes at the
    step it reached and ends with the unbroken run's history and weights."""
    import torch
    from safetensors.torch import load_file

    import elang.export.classify.train as tr
    from elang.data.datasets import make_splits
    from elang.export.classify.tiny import TINY_SWIFT, make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt", TINY_SWIFT)
    splits = make_splits(labelled_csv, sizes=(40, 40, 40))
    recipe = tr.Recipe(base=str(ckpt), epochs=2, batch_size=16, min_steps=0, max_length=32, lr=1e-3)
    whole = tr.train_classifier(recipe, splits, tmp_path / "a", progress=False, save_every_s=0)
    real_loss, calls = tr._exits_loss, {"n": 0}

    def dies(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == whole.metrics["steps"] // 2 + 2:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tr, "_exits_loss", dies)
    with pytest.raises(KeyboardInterrupt):
        tr.train_classifier(recipe, splits, tmp_path / "b", progress=False, save_every_s=1e-9)
    (state,) = (tmp_path / "b" / "train").glob("*/state.pt")
    assert torch.load(state, weights_only=False)["position"]["step"] == whole.metrics["steps"] // 2 + 1
    monkeypatch.setattr(tr, "_exits_loss", real_loss)
    resumed = tr.train_classifier(recipe, splits, tmp_path / "b", progress=False, save_every_s=1e-9)
    assert resumed.metrics["history"] == whole.metrics["history"]
    a, b = load_file(whole.checkpoint / "model.safetensors"), load_file(resumed.checkpoint / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def real_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small imbalanced file of real texts (long tweets of the bundled corpus, 64% one class),
    written by the script the docs name (scripts/small-imbalanced.py)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("real") / "small.csv"
    script = Path(__file__).resolve().parents[2] / "scripts" / "small-imbalanced.py"
    done = subprocess.run([sys.executable, script, out, "--rows", "300"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_the_readme_flow_on_a_small_imbalanced_file_with_the_learned_rule(elang_cli, real_small, tmp_path):
    """The README's sequence on a user's small file of real texts, with default training flags:
    train, export, calibrate --criterion auto --apply (applied, or refused with a clear message
    when the threshold does not pay), then the learned rule (refused while it does not pay,
    applied with --force; refused, naming why, where the fit part holds no text the Super fixes,
    and energy is applied instead), serve, classify, and bench --url, which finds the data from the served
    router and routes with the rule."""
    import csv

    from elang.calibration.record import read_record
    from elang.ops.server import TritonServer

    with open(real_small, newline="") as f:
        rows = list(csv.DictReader(f))
    corpus = [r["text"] for r in rows]
    labels = ("negative", "neutral", "positive")
    swift = make_tiny_checkpoint(tmp_path / "tiny-swift", TinySpec(layers=1, hidden=32, seed=3, labels=labels), corpus)
    sup = make_tiny_checkpoint(tmp_path / "tiny-super", TinySpec(layers=2, hidden=48, seed=4, labels=labels), corpus)
    trained = {}
    for role, model in (("swift", swift), ("super", sup)):
        out = elang_cli("train", "--model", model, "--data", real_small, "--cache-dir", tmp_path / "cache", timeout=900)
        assert out.returncode == 0, out.stderr
        assert "training: " in out.stdout and "longer than max_length" in out.stdout  # truncation is reported
        trained[role] = out.stdout.split("checkpoint ")[1].split()[0]
    repo = tmp_path / "repo"
    for role in ("swift", "super"):
        out = elang_cli("export", trained[role], "--as", role, "--repository", repo, timeout=600)
        assert out.returncode == 0, out.stderr
    base = ["calibrate", "--repository", repo, "--max-accuracy-drop", "2", "--cache-dir", tmp_path / "cache", "--apply"]
    out = elang_cli(*base, "--criterion", "auto", "--out", tmp_path / "cal-auto", cwd=tmp_path)
    if out.returncode == 4:  # tiny stages cost about the same: the threshold does not pay
        assert "cost more than serving the Super alone" in out.stderr and "not applied" in out.stderr
        assert read_record(repo / "elang") is None  # nothing was applied
    else:
        assert out.returncode in (0, 3), out.stderr  # 3: the test split missed the target by more than the tolerance
        assert read_record(repo / "elang") is not None
    learned = [*base, "--criterion", "learned", "--out", tmp_path / "cal"]
    out = elang_cli(*learned, cwd=tmp_path)
    criterion = "learned"
    if out.returncode == 2:  # the calibration split's fit part holds no text the Super fixes: no rule to fit
        assert "criterion learned cannot be fitted" in out.stderr and "never fixes a Swift mistake" in out.stderr
        assert read_record(repo / "elang") is None or read_record(repo / "elang").criterion != "learned"
        criterion = "energy"  # the flow goes on with a fixed criterion
        learned = [*base, "--criterion", criterion, "--out", tmp_path / "cal"]
        out = elang_cli(*learned, cwd=tmp_path)
    if out.returncode == 4:
        assert "cost more than serving the Super alone" in out.stderr and "not applied" in out.stderr
        out = elang_cli(*learned, "--force", cwd=tmp_path)
    assert out.returncode in (0, 3), out.stderr
    record = read_record(repo / "elang")
    assert record is not None and record.criterion == criterion and (criterion != "learned" or record.payload["rule"])
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(t + "\n" for t in corpus[:20]))
    with TritonServer(repo) as srv:
        out = elang_cli("classify", "--url", srv.grpc_url, texts, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout[out.stdout.index("{") :])["answered"] == 20
        out = elang_cli(
            "bench", "--url", srv.grpc_url, "--limit", "30", "--concurrency", "2", "--report", tmp_path / "b"
        )
        assert out.returncode == 0, out.stderr
        assert "the served router's record" in out.stderr and str(real_small) in out.stderr
        assert "elang@no-escalation" in (tmp_path / "b" / "bench.md").read_text()
