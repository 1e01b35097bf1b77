"""Router settings and batch routing without Triton."""

import math

import numpy as np
import pytest

from elang import contract as c
from elang.inputs import InputError, encode_texts
from elang.router import RouterSettings, route_batch
from elang.routing import energy


def test_settings_from_parameters():
    s = RouterSettings.from_parameters({"policy": "softmax", "threshold": "0.7", "temperature": "2"})
    assert (s.policy, s.thresholds, s.temperature, s.stages) == ("softmax", (0.7,), 2.0, c.STAGES)
    assert "softmax" in s.describe()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"policy": "nope"}, "unknown routing policy"),
        ({"threshold": "abc"}, "threshold"),
        ({"temperature": "0"}, "temperature"),
        ({"stages": "swift"}, "two stages"),
        ({"stages": "a,b,c", "threshold": "1"}, "expected 2 threshold"),
    ],
)
def test_bad_settings_name_the_problem(params, match):
    with pytest.raises(ValueError, match=match):
        RouterSettings.from_parameters(params)


def test_request_threshold_override():
    s = RouterSettings.from_parameters({"threshold": "1.5"})
    assert s.request_thresholds({}) == [1.5]
    assert s.request_thresholds({c.THRESHOLD_PARAM: "-inf"}) == [-math.inf]
    assert s.request_thresholds({c.THRESHOLD_PARAM: 0.25}) == [0.25]
    for bad in ("abc", "nan", True):
        with pytest.raises(InputError, match=c.THRESHOLD_PARAM):
            s.request_thresholds({c.THRESHOLD_PARAM: bad})


def _models():
    rng = np.random.default_rng(3)
    table = {c.SWIFT_MODEL: rng.normal(size=(10, 3)), c.SUPER_MODEL: rng.normal(size=(10, 3))}
    texts = encode_texts([f"text {i}" for i in range(10)])
    index = {t[0]: i for i, t in enumerate(texts)}
    seen: dict[str, list[int]] = {}

    def call(model, rows):
        ids = [index[r[0]] for r in rows]
        seen.setdefault(model, []).extend(ids)
        return table[model][ids]

    return table, texts, call, seen


def test_route_batch_uses_each_requests_threshold():
    table, texts, call, seen = _models()
    counts = [4, 6]
    outcome = route_batch(texts, counts, [[math.inf], [-math.inf]], RouterSettings(), call)
    first, second = outcome.per_request(counts)
    assert first[c.ROUTE].ravel().tolist() == [0] * 4
    assert second[c.ROUTE].ravel().tolist() == [1] * 6
    assert np.allclose(first[c.LOGITS], table[c.SWIFT_MODEL][:4])
    assert np.allclose(second[c.LOGITS], table[c.SUPER_MODEL][4:])
    assert np.allclose(first[c.ENERGY].ravel(), energy(table[c.SWIFT_MODEL][:4]))
    assert first[c.LABEL].ravel().tolist() == np.argmax(table[c.SWIFT_MODEL][:4], 1).tolist()
    assert seen[c.SUPER_MODEL] == [4, 5, 6, 7, 8, 9]
    assert {a.dtype for a in first.values()} == {np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.int32)}


def test_super_failure_fails_only_requests_with_escalated_rows():
    table, texts, call, _ = _models()

    def flaky(model, rows):
        if model == c.SUPER_MODEL:
            raise RuntimeError("model 'super' answered with an error: unavailable")
        return call(model, rows)

    counts = [3, 7]
    out = route_batch(texts, counts, [[math.inf], [-math.inf]], RouterSettings(), flaky)
    first, second = out.per_request(counts)
    assert isinstance(first, dict)
    assert isinstance(second, str) and "super" in second and "unavailable" in second


def test_swift_failure_fails_every_request():
    _, texts, _, _ = _models()

    def down(model, rows):
        raise RuntimeError("swift down")

    out = route_batch(texts, [5, 5], [[0.0], [0.0]], RouterSettings(), down)
    assert all(isinstance(a, str) and "swift down" in a for a in out.per_request([5, 5]))


def test_inline_stage_must_be_the_first_stage():
    assert RouterSettings.from_parameters({"inline_stage": "swift"}).inline_stage == "swift"
    assert RouterSettings.from_parameters({}).inline_stage == ""
    with pytest.raises(ValueError, match="inline_stage must be the first stage"):
        RouterSettings.from_parameters({"inline_stage": "super"})
