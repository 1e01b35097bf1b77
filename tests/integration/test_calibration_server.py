"""A calibration record goes into the router config and a running server answers with it after a reload."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from elang.calibration import classify as cal
from elang.calibration.thresholds import Target
from elang.client.client import ElangClient
from elang.export.classify.tiny import sample_rows
from elang.ops.server import TritonServer
from elang.repository.writer import parse_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("criterion", ["softmax", "learned"])
def test_record_round_trip_and_reload(tiny_repo, tmp_path, criterion):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    rows = sample_rows()
    names = ["negative", "neutral", "positive"]
    # 96 texts (the sample four times over, each copy marked by a word of its own): 24 can leave the learned rule's fit
    # part without a text the Super fixes, and calibrate then refuses to fit it (a unit test's case)
    texts = [f"{t} {'a' * k}".strip() for k in range(4) for t, _ in rows]  # no two alike, in the tiny vocabulary
    labels = np.array([names.index(lab) for _ in range(4) for _, lab in rows])
    scores = cal.collect_scores(repo, texts, labels)
    record, choice, table = cal.calibrate(scores, Target("super_fraction", 0.5), criterion, dataset="sample")
    assert {r.name for r in table} == {"energy", "softmax", "entropy", "learned"}
    assert record.rule and record.rule["features"][-1] == "log_length"
    again = cal.CalibrationRecord.from_json(record.to_json())
    assert again == record

    with TritonServer(repo, model_control="explicit") as srv:
        client = ElangClient(srv.grpc_url)
        before = client.router_info()
        assert before["calibration_version"] == tiny_repo_version(tiny_repo)
        cal.apply_record(repo, record)
        cfg = parse_config((repo / "elang" / "config.pbtxt").read_text())
        assert cfg.parameters["calibration_version"].string_value == record.version
        assert cfg.parameters["policy"].string_value == criterion
        info = client.reload_router()
        assert info["calibration_version"] == record.version and info["policy"] == criterion
        routes = np.concatenate([client.infer_batch(texts[k : k + 48])["ROUTE"].ravel() for k in (0, 48)])
    # The router escalates exactly the rows the recorded policy does offline (the learned one
    # from the rule in calibration.json, with the text lengths the router measures itself).
    pol = cal.policy_from_record(record)
    want = pol.escalate(scores.policy_scores(pol, record.temperature), record.threshold)
    # Half of the held-out part escalates, exactly (the fit part, a third of the texts, may go either way).
    _, hold = cal.split_for_fitting(len(texts))
    assert want[hold].mean() == record.calibration["super_fraction"] == pytest.approx(0.5)
    assert 0 < want.mean() < 1
    assert (routes == 1).tolist() == want.tolist()


def test_a_learned_policy_without_its_rule_is_refused_at_load(tiny_repo, tmp_path):
    from elang.calibration.record import router_policy
    from elang.core.settings import RouterSettings

    settings = RouterSettings(policy="learned", calibration_version="cal-x")
    with pytest.raises(ValueError, match="needs .*calibration.json"):
        router_policy(settings, tmp_path)
    # a record as the pair's calibration wrote it before the common record (schema 2) still loads
    old = {"schema": 2, "version": "cal-y", "criterion": "learned", "threshold": "0.5", "rule": {}}
    (tmp_path / "calibration.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="holds calibration 'cal-y' but the config names 'cal-x'"):
        router_policy(settings, tmp_path)
    (tmp_path / "calibration.json").write_text('{"what": 1}')
    with pytest.raises(ValueError, match="not a calibration record .* elang calibrate .* --apply"):
        router_policy(settings, tmp_path)
    with pytest.raises(ValueError, match="learned policy is fitted on one Swift/Super pair"):
        RouterSettings(stages=("a", "b", "c"), thresholds=(0.0, 0.0), policy="learned")


def test_reload_on_a_fixed_server_is_a_clear_error(server):
    from elang.client.client import ClientError

    with pytest.raises(ClientError, match="explicit"):
        ElangClient(server.grpc_url).reload_router()


def tiny_repo_version(tiny_repo) -> str:
    cfg = parse_config((tiny_repo["repo"] / "elang" / "config.pbtxt").read_text())
    return cfg.parameters["calibration_version"].string_value
