"""A calibration record goes into the router config and a running server answers with it after a reload."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from elang.client.client import ElangClient
from elang.export.tiny import sample_rows

from elang import calibrate as cal
from elang.calibration import Target
from elang.repository import parse_config
from elang.routing import get_policy
from elang.server import TritonServer

pytestmark = pytest.mark.integration


def test_record_round_trip_and_reload(tiny_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    rows = sample_rows()
    names = ["negative", "neutral", "positive"]
    texts, labels = [t for t, _ in rows], np.array([names.index(lab) for _, lab in rows])
    scores = cal.collect_scores(repo, texts, labels)
    record, choice, table = cal.calibrate(scores, Target("super_fraction", 0.5), "softmax", dataset="sample")
    assert {r.name for r in table} == {"energy", "softmax", "entropy"}
    again = cal.CalibrationRecord.from_json(record.to_json())
    assert again == record

    with TritonServer(repo, model_control="explicit") as srv:
        client = ElangClient(srv.grpc_url)
        before = client.router_info()
        assert before["calibration_version"] == tiny_repo_version(tiny_repo)
        cal.apply_record(repo, record)
        cfg = parse_config((repo / "elang" / "config.pbtxt").read_text())
        assert cfg.parameters["calibration_version"].string_value == record.version
        assert cfg.parameters["policy"].string_value == "softmax"
        info = client.reload_router()
        assert info["calibration_version"] == record.version and info["policy"] == "softmax"
        out = client.infer_batch(texts)
    pol = get_policy("softmax")
    want = pol.escalate(pol.score(scores.swift, record.temperature), record.threshold)
    assert want.mean() == pytest.approx(0.5)
    assert (out["ROUTE"].ravel() == 1).tolist() == want.tolist()


def test_reload_on_a_fixed_server_is_a_clear_error(server):
    from elang.client.client import ClientError

    with pytest.raises(ClientError, match="explicit"):
        ElangClient(server.grpc_url).reload_router()


def tiny_repo_version(tiny_repo) -> str:
    cfg = parse_config((tiny_repo["repo"] / "elang" / "config.pbtxt").read_text())
    return cfg.parameters["calibration_version"].string_value
