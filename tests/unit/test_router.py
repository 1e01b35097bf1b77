"""Router settings and batch routing without Triton."""

import math

import numpy as np
import pytest

from elang import contract as c
from elang.core.execution import Job
from elang.core.routing import energy
from elang.core.settings import RouterSettings, format_stage_map, parse_stage_map
from elang.core.texts import InputError, encode_texts
from elang.repository.config import stage_batch_limits
from elang.tasks.classify import classifier_outputs


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


def test_job_outputs_follow_the_contract():
    rng = np.random.default_rng(3)
    job = Job(encode_texts(["a", "b", "c"]), [0.0])
    job.first_logits = rng.normal(size=(3, 4)).astype(np.float32)
    job.logits = job.first_logits.copy()
    job.logits[1] = [0, 0, 9, 0]
    job.route[1] = 1
    out = classifier_outputs(job, temperature=2.0)
    assert out[c.LABEL].ravel().tolist()[1] == 2 and out[c.ROUTE].ravel().tolist() == [0, 1, 0]
    assert np.allclose(out[c.ENERGY].ravel(), energy(job.first_logits, 2.0))  # Swift's energy, even when Super answered
    assert {k: v.shape for k, v in out.items()} == {
        c.LABEL: (3, 1),
        c.LOGITS: (3, 4),
        c.ENERGY: (3, 1),
        c.ROUTE: (3, 1),
    }
    assert {a.dtype for a in out.values()} == {np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.int32)}


def test_stage_limits_from_parameters():
    s = RouterSettings.from_parameters(
        {"stage_max_batch": "swift=32,super=8", "stage_inflight": "3", "stage_timeout_s": "2.5"}
    )
    swift, sup = s.stage_limits()
    assert (swift.max_batch, sup.max_batch, sup.max_inflight, sup.timeout_s) == (32, 8, 3, 2.5)
    assert sup.max_queued_rows == c.DEFAULT_STAGE_QUEUE_ROWS
    assert parse_stage_map({"k": "super=4"}, "k", c.STAGES) == {"super": 4}
    assert format_stage_map({"swift": 1, "super": 2}) == "swift=1,super=2"
    for bad, match in (("nope=3", "not one of the stages"), ("super=x", "name=number"), ("0", "max_batch")):
        with pytest.raises(ValueError, match=match):
            RouterSettings.from_parameters({"stage_max_batch": bad})


def test_stage_batch_limits_come_from_the_stages_configs(tmp_path):
    (tmp_path / "super").mkdir()
    (tmp_path / "super" / "config.pbtxt").write_text('name: "super"\nmax_batch_size: 4\n')
    params = {"stages": "swift,super", "stage_max_batch": "swift=64,super=64"}
    assert stage_batch_limits(tmp_path, params) == {"stage_max_batch": "swift=64,super=4"}
    assert stage_batch_limits(tmp_path / "elsewhere", params) == {"stage_max_batch": "swift=64,super=64"}


def test_inline_stages_are_stages_of_the_router():
    assert RouterSettings.from_parameters({"inline_stage": "swift"}).inline_stages == ("swift",)
    assert RouterSettings.from_parameters({"inline_stage": " swift, super "}).inline_stages == ("swift", "super")
    assert RouterSettings.from_parameters({}).inline_stages == ()
    with pytest.raises(ValueError, match=r"inline_stage names \['other'\]"):
        RouterSettings.from_parameters({"inline_stage": "swift,other"})
