"""OpenVINO streams of a stage: how a batch's rows are cut into parts, what is compiled, and the
refusals (the serving path is in tests/integration/test_openvino_engine.py)."""

from __future__ import annotations

import numpy as np
import pytest

from elang.repository.writer import RepositoryError, parse_stage_counts
from elang.runtimes.openvino import check_engine, check_streams, compile_config, row_parts


def _feeds(rows: int, width: int = 5) -> dict[str, np.ndarray]:
    ids = np.arange(rows * width, dtype=np.int64).reshape(rows, width)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


@pytest.mark.parametrize("rows,parts,sizes", [(1, 2, [1]), (2, 2, [1, 1]), (3, 2, [2, 1]), (7, 3, [2, 3, 2]),
                                              (5, 1, [5]), (2, 4, [1, 1])])  # fmt: skip
def test_rows_are_cut_in_order_into_near_equal_parts_and_join_back(rows, parts, sizes):
    feeds = _feeds(rows)
    got = row_parts(feeds, parts)
    assert [len(p["input_ids"]) for p in got] == sizes
    for name in feeds:  # every input cut at the same rows, in order: concatenated, the batch again
        np.testing.assert_array_equal(np.concatenate([p[name] for p in got]), feeds[name])
    if parts == 1 or rows == 1:
        assert got[0] is feeds  # nothing to cut: the batch as it came


def test_one_stream_compiles_for_latency_and_several_for_throughput():
    assert compile_config("bf16") == {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
    assert compile_config("f32", threads=2, streams=2) == {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": "2",
        "INFERENCE_NUM_THREADS": 2,
        "ENABLE_CPU_PINNING": False,  # a thread budget shares the cores: not pinned to the first ones
    }


def test_stream_counts_that_cannot_run_are_refused_by_name():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="streams must be an integer >= 1"):
            check_streams(bad)
    with pytest.raises(ValueError, match=r"streams \(3\) cannot exceed threads \(2\)"):
        check_streams(3, threads=2)
    with pytest.raises(ValueError, match="streams 2 needs engine openvino"):
        check_engine("onnxruntime", "fp32", 2)
    check_engine("openvino", "bf16", 2)


def test_tune_per_stage_counts_read_one_count_or_one_per_named_stage():
    names = ["elang", "super", "swift"]
    assert parse_stage_counts("streams", None, names, 1) is None
    assert parse_stage_counts("streams", "2", names, 1) == {"*": 2}
    assert parse_stage_counts("threads", "swift=0, super=1", names, 0) == {"swift": 0, "super": 1}
    with pytest.raises(RepositoryError, match="streams: no model 'nope'"):
        parse_stage_counts("streams", "nope=2", names, 1)
    with pytest.raises(RepositoryError, match="swift must be >= 1"):
        parse_stage_counts("streams", "swift=0", names, 1)
    with pytest.raises(RepositoryError, match="'many' is not an integer"):
        parse_stage_counts("instances", "many", names, 1)
    with pytest.raises(RepositoryError, match="expected N or STAGE=N"):
        parse_stage_counts("threads", "swift=1,super", names, 0)
