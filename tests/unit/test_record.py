"""The one calibration record: round trip, records of the older per-task layouts, clear errors."""

from __future__ import annotations

import json
import math

import pytest

from elang import contract as c
from elang.calibration.record import Record, RecordError


def _record(**kw) -> Record:
    base = dict(
        task="exits", router="elang_exits", version="v1", criterion="softmax", thresholds=[0.7, 0.7],
        temperatures=[1.0, 1.2, 0.9], target={"kind": "accuracy_drop", "value": 0.5}, confidence=0.9,
        certificate={"mean_exit_layer": 3.0}, dataset="fp", created="2026-12-06",
    )  # fmt: skip
    base.update(kw)
    return Record(**base)


def test_round_trip_keeps_infinite_thresholds_and_sets_router_values():
    r = _record(thresholds=[math.inf, -math.inf], payload={"rule": {"w": [1]}})
    back = Record.from_json(r.to_json())
    assert back == r
    v = r.router_values()
    assert v[c.PARAM_THRESHOLD] == "inf,-inf" and v[c.PARAM_TEMPERATURE] == "1.0,1.2,0.9"
    assert v[c.PARAM_POLICY] == "softmax" and v[c.PARAM_CALIBRATION_VERSION] == "v1"


def test_records_of_the_older_layouts_are_lifted():
    exits = {"kind": "multi-exit", "schema": 1, "router": "elang_exits", "version": "e1", "policy": "softmax",
             "threshold": "0.8", "temperatures": [1, 1, 1], "exit_layers": [2, 4, 6], "target": {}, "dataset": "d",
             "created": "t", "calibration": {"mean_exit_layer": 4.0}}  # fmt: skip
    r = Record.from_json(json.dumps(exits))
    assert (r.task, r.thresholds, r.certificate["mean_exit_layer"]) == ("exits", [0.8, 0.8], 4.0)
    seq = {"task": "generate", "version": "g1", "criterion": "mean", "threshold": -7.1, "target": {},
           "calibration": {"confidence": 0.9}, "data_fingerprint": "f", "created": "t"}  # fmt: skip
    r = Record.from_json(json.dumps(seq))
    assert (r.task, r.criterion, r.thresholds, r.confidence) == ("generate", "mean", [-7.1], 0.9)
    pair = {"schema": 1, "version": "p1", "criterion": "energy", "threshold": "inf", "temperature": 1.5,
            "validation": {"super_fraction": 0.2}}  # fmt: skip
    r = Record.from_json(json.dumps(pair))
    assert (r.task, r.thresholds, r.temperatures, r.certificate) == ("classify", [math.inf], [1.5], pair["validation"])
    assert r.payload == pair


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"kind": "multi-exit"}', '{"version": "x"}'])
def test_unreadable_records_say_how_to_recalibrate(text):
    with pytest.raises(RecordError, match="elang calibrate .*--apply"):
        Record.from_json(text, "r/calibration.json")
