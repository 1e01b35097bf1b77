"""The ONNX text classifier: length bucketing gives the same logits as one padded batch."""

from __future__ import annotations

import numpy as np

from elang.runtimes.classifier import OnnxTextClassifier


def test_length_bucketing_matches_one_batch(tiny_repo):
    folder = tiny_repo["work"] / "swift"
    texts = ["short", "a much longer text that goes on about trains and weather " * 3, "mid length text here"] * 7
    plain = OnnxTextClassifier(folder)(texts)
    bucketed = OnnxTextClassifier(folder, length_bucket=4)(texts)
    np.testing.assert_allclose(bucketed, plain, atol=1e-5)
    pairs = OnnxTextClassifier(folder)(texts[:3], ["second"] * 3)
    assert pairs.shape == (3, 3) and not np.allclose(pairs, plain[:3])


def test_sessions_do_not_spin_unless_asked(tiny_repo):
    """Idle ONNX Runtime threads sleep by default (stages share cores); spinning is opt-in."""
    folder = tiny_repo["work"] / "swift"
    key = "session.intra_op.allow_spinning"
    assert OnnxTextClassifier(folder).session.get_session_options().get_session_config_entry(key) == "0"
    spinning = OnnxTextClassifier(folder, spinning=True).session.get_session_options()
    assert spinning.get_session_config_entry(key) == "1"
