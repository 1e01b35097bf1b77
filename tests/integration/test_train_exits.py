"""`elang train --exits` and `elang slenderize` on a tiny encoder and a small labelled file:
per-exit results, caching, resuming after an interruption, and the pruned model's shape."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from elang.export.classify.tiny import TinySpec, make_tiny_checkpoint
from elang.export.exits.model import MultiExitModel, read_exits

pytestmark = pytest.mark.integration

CUES = {"positive": "wonderful", "negative": "terrible", "neutral": "average"}
WORDS = "the a service order staff room price time place food day".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = random.Random(1)
    rows = []
    for i in range(300):
        label = list(CUES)[i % 3]
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        words.insert(rng.randint(0, 3), CUES[label])
        rows.append((" ".join(words), label))
    folder = tmp_path_factory.mktemp("exits-data")
    path = folder / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    spec = TinySpec(layers=4, hidden=32, heads=4, vocab_size=120, seed=4, labels=("negative", "neutral", "positive"))
    ckpt = make_tiny_checkpoint(folder / "tiny", spec, corpus=[t for t, _ in rows])
    return path, ckpt


def _train(elang_cli, data, cache: Path, *extra):
    path, ckpt = data
    args = ["train", "--model", ckpt, "--data", path, "--exits", "1,2,4", "--epochs", "10", "--lr", "3e-3"]
    return elang_cli(*args, "--min-steps", "0", "--cache-dir", cache, *extra, timeout=900)


def test_exits_train_jointly_with_temperatures_and_are_cached(elang_cli, data, tmp_path):
    out = _train(elang_cli, data, tmp_path / "cache")
    assert out.returncode == 0, out.stderr
    ckpt = Path(out.stdout.split("checkpoint ", 1)[1].split()[0])
    meta = read_exits(ckpt)
    assert meta["layers"] == [1, 2, 4] and len(meta["temperatures"]) == 3
    assert all(0.25 <= t <= 10 for t in meta["temperatures"])
    metrics = json.loads((ckpt.parent / "metrics.json").read_text())
    acc = metrics["exit_test_accuracy"]
    assert len(acc) == 3 and max(acc) > 0.6 and min(acc) > 0.4  # chance is 1/3: every exit learned
    assert metrics["exit_gflops"][0] < metrics["exit_gflops"][1] < metrics["exit_gflops"][2]
    assert "exit layer | validation | test | temperature" in out.stdout
    # The second run is the cached one: same checkpoint, no training.
    again = _train(elang_cli, data, tmp_path / "cache")
    assert again.returncode == 0 and f"checkpoint {ckpt}" in again.stdout
    assert "cached:" in again.stderr and "train " not in again.stderr.replace("cached:", "")


def test_an_interrupted_run_resumes_where_it_stopped(elang_cli, data, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path, ckpt = data
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "elang.cli", "train", "--model", str(ckpt), "--data", str(path)]
    args += ["--exits", "1,2,4", "--epochs", "8", "--evals-per-epoch", "4", "--patience", "100", "--min-steps", "0"]
    proc = subprocess.Popen(
        [*args, "--cache-dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(cache.glob("train/*/state.pt"))
        if found:
            state = found[0]
            time.sleep(0.5)
            break
        time.sleep(0.2)
    assert state is not None, "no state was saved"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    resumed = elang_cli(*args[3:], "--cache-dir", cache, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr


def test_slenderize_prunes_by_importance_and_retrains_every_exit(elang_cli, data, tmp_path):
    cache = tmp_path / "cache"
    out = _train(elang_cli, data, cache)
    teacher = Path(out.stdout.split("checkpoint ", 1)[1].split()[0])
    path, _ = data
    slim = elang_cli(
        "slenderize", teacher, "--width", "0.5", "--epochs", "6", "--lr", "3e-3", "--importance-texts", "64",
        "--data", path, "--cache-dir", cache, timeout=900,
    )  # fmt: skip
    assert slim.returncode == 0, slim.stderr
    student = Path(slim.stdout.split("checkpoint ", 1)[1].split()[0])
    model = MultiExitModel.load(student)
    cfg = model.encoder.config
    assert cfg.intermediate_size == 32  # half of the tiny model's 64 FFN neurons
    assert all(len(kept) == 2 for kept in model._heads_kept)  # two of four heads in every layer
    assert model.layers == (1, 2, 4)
    metrics = json.loads((student.parent / "metrics.json").read_text())
    assert metrics["student_parameters"] < metrics["teacher_parameters"]
    assert np.all(np.diff(metrics["flops_share_per_exit"]) > 0) and metrics["flops_share_per_exit"][-1] < 0.75
    assert metrics["exit_test_accuracy"][-1] > 0.6
    assert "FLOPs vs the full model" in slim.stdout
