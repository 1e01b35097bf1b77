"""Routing metrics on a running server's /metrics after a known workload."""

from __future__ import annotations

import re
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from chart_checks import dashboard_metric_names
from tritonclient.utils import InferenceServerException

from elang.bench import prom_samples
from elang.client.client import ElangClient
from elang.export.classify.tiny import sample_rows
from elang.ops.server import TritonServer

pytestmark = pytest.mark.integration


def _metric(text: str, name: str, **labels) -> float:
    for have, value in prom_samples(text, name):
        if all(have.get(k) == str(v) for k, v in labels.items()):
            return value
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_metrics_after_a_known_workload(tiny_repo):
    texts = [t for t, _ in sample_rows()]
    with TritonServer(tiny_repo["repo"]) as srv:  # a fresh server: counts start at zero
        client = ElangClient(srv.grpc_url)
        client.infer_batch(texts[:10], threshold="-inf")
        client.infer_batch(texts[10:16], threshold="inf")
        out = client.infer_batch(texts[16:20], threshold="inf")
        raw = grpcclient.InferenceServerClient(srv.grpc_url)
        bad = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
        bad.set_data_from_numpy(np.array([[b""]], dtype=object))
        with pytest.raises(InferenceServerException):
            raw.infer("elang", [bad])
        # Metric updates are sent by the router's background thread, after the answers.
        deadline = time.monotonic() + 10
        while True:
            text = urllib.request.urlopen(srv.metrics_url, timeout=10).read().decode()
            done = _metric(text, "elang_requests_total", model="elang", outcome="ok") == 3
            if (done and _metric(text, "elang_swift_energy_count", model="elang") == 20) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert _metric(text, "elang_routed_rows_total", model="elang", route="super") == 10
    assert _metric(text, "elang_routed_rows_total", model="elang", route="swift") == 10
    assert _metric(text, "elang_failed_rows_total", model="elang", stage="super", reason="deadline") == 0
    assert _metric(text, "elang_requests_total", model="elang", outcome="ok") == 3
    assert _metric(text, "elang_requests_total", model="elang", outcome="invalid") == 1
    assert _metric(text, "elang_swift_energy_count", model="elang") == 20
    energies = out["ENERGY"].ravel()
    total = _metric(text, "elang_swift_energy_sum", model="elang")
    assert np.isfinite(total) and total < 0 and np.all(energies < 0)
    assert _metric(text, "elang_super_fraction", model="elang") == pytest.approx(0.5)
    # Time profile: 3 good requests (and the invalid one) in at least 1 execute; Swift on every text,
    # Super on the 10 escalated ones.
    assert 1 <= _metric(text, "elang_router_executions_total", model="elang") <= 4
    assert _metric(text, "elang_stage_rows_total", model="elang", stage="swift") == 20
    assert _metric(text, "elang_stage_rows_total", model="elang", stage="super") == 10
    assert _metric(text, "elang_stage_calls_total", model="elang", stage="super") >= 1
    total = _metric(text, "elang_router_duration_us_total", model="elang")
    swift = _metric(text, "elang_stage_duration_us_total", model="elang", stage="swift")
    sup = _metric(text, "elang_stage_duration_us_total", model="elang", stage="super")
    assert 0 < swift < total and 0 < sup  # Swift runs inside execute; Super's calls do not
    assert _metric(text, "elang_stage_queue_rows", model="elang", stage="super") == 0
    assert _metric(text, "elang_stage_abandoned_total", model="elang", stage="super") == 0
    version = re.search(r'elang_calibration_info\{[^}]*calibration_version="([^"]+)"', text).group(1)
    assert version == "tiny-sample-q0.3"
    # The Grafana dashboard's queries name only metrics this server exports.
    served = {n for n in re.findall(r"^(elang_[a-z_]+)", text, re.M)}
    served |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in served}
    assert dashboard_metric_names() <= served, dashboard_metric_names() - served
