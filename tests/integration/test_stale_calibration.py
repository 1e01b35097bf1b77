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


def _info(srv: TritonServer) -> str:
    text = urllib.request.urlopen(srv.metrics_url, timeout=10).read().decode()
    return re.search(r'^elang_calibration_info\{[^}]*model="elang"[^}]*\}', text, re.M).group(0)


def test_reexport_after_calibration_is_reported(elang_cli, tiny_repo, labelled_csv, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)
    out = elang_cli(
        "calibrate", "--repository", repo, "--super-fraction", "0.3", "--apply", "--out", tmp_path / "cal",
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
