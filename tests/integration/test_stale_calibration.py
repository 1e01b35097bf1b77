"""A re-export after calibration marks the router's calibration stale: a warning at load and
the `stale` label of elang_calibration_info name the changed stage."""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest

from elang import contract as c
from elang.ops.server import TritonServer
from elang.repository.writer import parse_config

pytestmark = pytest.mark.integration


def _info(srv: TritonServer, router: str = "elang") -> str:
    text = urllib.request.urlopen(srv.metrics_url, timeout=10).read().decode()
    return re.search(rf'^elang_calibration_info\{{[^}}]*model="{router}"[^}}]*\}}', text, re.M).group(0)


def test_reexport_after_calibration_is_reported(elang_cli, tiny_repo, labelled_csv, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    out = elang_cli(
        "calibrate", "--repository", repo, "--super-fraction", "0.3", "--apply", "--force", "--out", tmp_path / "cal",
        "--data", labelled_csv, "--allow-other-data", "--cache-dir", tmp_path / "c", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    params = parse_config((repo / "elang" / "config.pbtxt").read_text()).parameters
    hashes = dict(item.split("=") for item in params[c.PARAM_STAGE_HASHES].string_value.split(","))
    assert set(hashes) == {"swift", "super"} and all(len(h) == 16 for h in hashes.values())
    with TritonServer(repo) as srv:
        assert 'stale=""' in _info(srv)
        assert "is stale" not in srv.log_tail(400)
    # "Re-export" Swift: other weights, same inputs and outputs.
    shutil.copy(tiny_repo["work"] / "super" / "model.onnx", repo / "swift" / "1" / "model.onnx")
    with TritonServer(repo) as srv:
        assert 'stale="swift"' in _info(srv)
        assert "calibration" in srv.log_tail(400) and "is stale: stage(s) swift changed" in srv.log_tail(400)


def test_a_multi_exit_calibration_goes_stale_when_a_segment_is_reexported(tmp_path):
    """The exits task's record goes through the one apply: it records the segments' fingerprints,
    and re-exporting one segment flags the router's calibration stale, naming that segment."""
    from datetime import datetime, timezone

    from elang.calibration.exits import ExitRecord, apply_exit_record
    from elang.calibration.record import read_record
    from elang.export.classify.tiny import TinySpec, make_tiny_multi_exit, sample_rows
    from elang.export.exits.cut import export_segments
    from elang.repository.exits import ExitModelSpec, write_exit_model

    texts = [t for t, _ in sample_rows()][:10]
    segs = {}
    for seed in (4, 7):  # the served model, and another with the same shapes (the "re-export")
        ckpt = make_tiny_multi_exit(tmp_path / f"m{seed}", TinySpec(layers=2, hidden=32, heads=4, seed=seed), (1, 2))
        segs[seed] = tmp_path / f"seg{seed}"
        assert export_segments(ckpt, segs[seed], texts, max_length=32).ok
    repo = tmp_path / "repo"
    names = write_exit_model(repo, ExitModelSpec(segs[4], prefix="exits_", router="elang_exits", max_length=32))
    assert names == ["exits_1", "exits_2", "elang_exits"]
    record = ExitRecord(
        version="exits-test", router="elang_exits", policy="softmax", threshold=0.6, temperatures=[1.0, 1.0],
        exit_layers=[1, 2], target={"kind": "accuracy_drop", "value": 1.0}, confidence=0.9, dataset="test",
        created=datetime.now(timezone.utc).isoformat(), calibration={},  # noqa: UP017
    )  # fmt: skip
    apply_exit_record(repo, record)
    params = parse_config((repo / "elang_exits" / "config.pbtxt").read_text()).parameters
    hashes = dict(item.split("=") for item in params[c.PARAM_STAGE_HASHES].string_value.split(","))
    assert set(hashes) == {"exits_1", "exits_2"}
    assert read_record(repo / "elang_exits").stage_hashes == hashes
    with TritonServer(repo) as srv:
        assert 'stale=""' in _info(srv, "elang_exits")
    shutil.copy(segs[7] / "seg1" / "model.onnx", repo / "exits_2" / "1" / "model.onnx")
    with TritonServer(repo) as srv:
        assert 'stale="exits_2"' in _info(srv, "elang_exits")
