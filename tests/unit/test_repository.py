"""The repository writer: configs parse, the contract is honoured, bad folders are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from elang import contract as c
from elang.repository.writer import (
    ClassifierSpec,
    RepositoryError,
    RouterSpec,
    copy_inline_stage,
    inspect_model_folder,
    model_names,
    parse_config,
    refresh_routers,
    tune_repository,
    write_classifier,
    write_repository,
)

ROOT = Path(__file__).resolve().parents[2]


def _configs(repo: Path) -> dict[str, mc.ModelConfig]:
    return {n: parse_config((repo / n / "config.pbtxt").read_text()) for n in model_names(repo)}


def _io(cfg: mc.ModelConfig):
    return (
        [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in cfg.input],
        [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in cfg.output],
    )


def test_python_ort_repository_follows_the_contract(tiny_repo):
    cfgs = _configs(tiny_repo["repo"])
    assert set(cfgs) == {c.ROUTER_MODEL, c.SWIFT_MODEL, c.SUPER_MODEL}
    router = cfgs[c.ROUTER_MODEL]
    assert router.backend == "python" and router.max_batch_size > 0
    assert _io(router) == (
        [("TEXT", "TYPE_STRING", [1])],
        [
            ("LABEL", "TYPE_INT64", [1]),
            ("LOGITS", "TYPE_FP32", [3]),
            ("ENERGY", "TYPE_FP32", [1]),
            ("ROUTE", "TYPE_INT32", [1]),
            ("TRUNCATED", "TYPE_BOOL", [1]),  # every stage reports it
        ],
    )
    assert router.parameters[c.PARAM_POLICY].string_value == "energy"
    assert float(router.parameters[c.PARAM_THRESHOLD].string_value) == pytest.approx(tiny_repo["threshold"])
    for stage in (c.SWIFT_MODEL, c.SUPER_MODEL):
        cfg = cfgs[stage]
        assert _io(cfg) == (
            [("TEXT", "TYPE_STRING", [1])],
            [("LOGITS", "TYPE_FP32", [3]), ("TRUNCATED", "TYPE_BOOL", [1])],
        )
        assert cfg.HasField("dynamic_batching")
        version = tiny_repo["repo"] / stage / "1"
        assert (version / "model.onnx").is_file() and (version / "tokenizer.json").is_file()
        assert json.loads(cfg.parameters[c.PARAM_LABELS].string_value) == ["negative", "neutral", "positive"]
    # model.py files are one-line adapters into the package
    body = (tiny_repo["repo"] / c.ROUTER_MODEL / "1" / "model.py").read_text()
    assert "from elang.triton.router_model import TritonPythonModel" in body


def test_native_onnxruntime_variant(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(
        tmp_path / "native",
        ClassifierSpec(work / "swift", runtime="onnxruntime", max_length=64),
        ClassifierSpec(work / "super", runtime="onnxruntime", max_length=64, gpu=True),
    )
    cfgs = _configs(repo)
    assert set(cfgs) >= {"swift", "swift_tokenizer", "swift_onnx", "super", "super_onnx", "elang"}
    assert cfgs["swift_onnx"].platform == "onnxruntime_onnx"
    assert cfgs["super_onnx"].instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    # the native stages cannot say which texts they cut, so the router does not claim to
    assert c.TRUNCATED not in [o.name for o in cfgs["elang"].output]
    ens = cfgs["swift"]
    assert ens.platform == "ensemble"
    tok_step, onnx_step = ens.ensemble_scheduling.step
    assert tok_step.model_name == "swift_tokenizer" and onnx_step.model_name == "swift_onnx"
    onnx_inputs = {t.name for t in cfgs["swift_onnx"].input}
    assert set(tok_step.output_map) == onnx_inputs == set(onnx_step.input_map)
    assert set(tok_step.output_map.values()) == set(onnx_step.input_map.values())
    assert dict(onnx_step.output_map) == {"logits": "LOGITS"}
    assert all(list(t.dims) == [64] for t in cfgs["swift_onnx"].input)
    assert (repo / "swift_onnx" / "1" / "model.onnx").is_file()
    assert (repo / "swift_tokenizer" / "1" / "tokenizer.json").is_file()


def test_label_sets_must_match(tiny_repo, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_repo["work"] / "super", other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["id2label"] = {"0": "neg", "1": "neu", "2": "pos"}
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RepositoryError, match="labels"):
        write_repository(tmp_path / "r", ClassifierSpec(tiny_repo["work"] / "swift"), ClassifierSpec(other))


def test_bad_model_folders(tiny_repo, tmp_path):
    with pytest.raises(RepositoryError, match="does not exist"):
        inspect_model_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RepositoryError, match="no model.onnx"):
        inspect_model_folder(empty)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_repo["work"] / "swift", broken)
    (broken / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(RepositoryError, match="not a readable ONNX model"):
        inspect_model_folder(broken)


def test_bad_router_and_runtime_settings(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    with pytest.raises(RepositoryError, match="unknown routing policy"):
        write_repository(
            tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"), RouterSpec(policy="x")
        )
    with pytest.raises(RepositoryError, match="unknown runtime"):
        write_repository(tmp_path / "r", ClassifierSpec(work / "swift", runtime="tvm"), ClassifierSpec(work / "super"))


def test_checked_in_layout_matches_the_writer(tiny_repo):
    """model_repository/ in the source tree is what the writer produces (configs and adapters)."""
    checked_in = ROOT / "model_repository"
    fresh = _configs(tiny_repo["repo"])
    ours = _configs(checked_in)
    assert set(ours) == set(fresh)
    for name, cfg in fresh.items():
        assert _io(ours[name]) == _io(cfg), name
        assert (ours[name].backend, ours[name].platform, ours[name].max_batch_size) == (
            cfg.backend,
            cfg.platform,
            cfg.max_batch_size,
        )
        assert set(ours[name].parameters) == set(cfg.parameters), name
        assert ours[name].dynamic_batching.default_queue_policy == cfg.dynamic_batching.default_queue_policy, name
        assert (checked_in / name / "1" / "model.py").read_text() == (
            tiny_repo["repo"] / name / "1" / "model.py"
        ).read_text()


def test_router_runs_a_python_ort_first_stage_inline(tiny_repo, tmp_path):
    """The writer copies a python-ort Swift into the router's folder; other runtimes stay on BLS."""
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    params = parse_config((repo / "elang" / "config.pbtxt").read_text()).parameters
    assert params[c.PARAM_INLINE_STAGE].string_value == "swift"
    copy = repo / "elang" / "1" / "swift"
    assert (copy / "model.onnx").read_bytes() == (repo / "swift" / "1" / "model.onnx").read_bytes()
    assert (copy / "tokenizer.json").is_file() and not (copy / "model.py").exists()
    meta = json.loads((copy / c.INLINE_STAGE_FILE).read_text())
    swift_params = parse_config((repo / "swift" / "config.pbtxt").read_text()).parameters
    assert meta["stage"] == "swift"
    assert meta["parameters"] == {k: v.string_value for k, v in swift_params.items()}

    off = write_repository(
        tmp_path / "off",
        ClassifierSpec(work / "swift"),
        ClassifierSpec(work / "super"),
        RouterSpec(inline="none"),
    )
    assert (
        parse_config((off / "elang" / "config.pbtxt").read_text()).parameters[c.PARAM_INLINE_STAGE].string_value == ""
    )
    assert not (off / "elang" / "1" / "swift").exists()

    ens = write_repository(
        tmp_path / "ens",
        ClassifierSpec(work / "swift", runtime="python-ensemble"),
        ClassifierSpec(work / "super", runtime="python-ensemble"),
    )
    assert (
        parse_config((ens / "elang" / "config.pbtxt").read_text()).parameters[c.PARAM_INLINE_STAGE].string_value == ""
    )
    assert not (ens / "elang" / "1" / "swift").exists()


def test_rewriting_a_stage_refreshes_its_inline_copy(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    # Swift replaced by another model (here: the super's files) with another max_length.
    write_classifier(repo, "swift", ClassifierSpec(work / "super", max_length=32))
    assert refresh_routers(repo, "swift") == ["elang"]
    copy = repo / "elang" / "1" / "swift"
    assert (copy / "model.onnx").read_bytes() == (work / "super" / "model.onnx").read_bytes()
    assert json.loads((copy / c.INLINE_STAGE_FILE).read_text())["parameters"][c.PARAM_MAX_LENGTH] == "32"
    assert refresh_routers(repo, "nonexistent") == []
    with pytest.raises(RepositoryError, match="neither a python-ort, a generating nor a segment stage"):
        copy_inline_stage(repo, "elang", "nonexistent")


def test_a_stage_that_can_run_inline_later_is_taken_in_by_routers_that_asked_for_it(tiny_repo, tmp_path):
    """A router written while its Swift could not run in its process (missing, or another kind)
    takes it in when the stage is rewritten, as its inline mode asked; a router written with
    inline "none" does not."""
    work = tiny_repo["work"]
    for mode, want in (("default", "swift"), ("none", "")):
        repo = write_repository(
            tmp_path / mode,
            ClassifierSpec(work / "swift", runtime="python-ensemble"),
            ClassifierSpec(work / "super"),
            RouterSpec(inline=mode),
        )
        params = _configs(repo)["elang"].parameters
        assert params[c.PARAM_INLINE_STAGE].string_value == ""
        assert params[c.PARAM_INLINE_MODE].string_value == mode
        write_classifier(repo, "swift", ClassifierSpec(work / "swift"))  # now python-ort
        assert refresh_routers(repo, "swift") == ["elang"]
        assert _configs(repo)["elang"].parameters[c.PARAM_INLINE_STAGE].string_value == want
        copy = repo / "elang" / "1" / "swift" / "model.onnx"
        assert copy.is_file() == bool(want)
    tune_repository(repo, inline=True)  # tune records the mode it sets
    assert _configs(repo)["elang"].parameters[c.PARAM_INLINE_MODE].string_value == "default"


def test_tune_changes_knobs_in_place(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    changed = tune_repository(repo, ort_spinning=True, inline=False, router_instances=2, queue_delay_us=0)
    assert changed == ["elang", "super", "swift"]
    cfgs = _configs(repo)
    assert cfgs["swift"].parameters[c.PARAM_ORT_SPINNING].string_value == "1"
    assert cfgs["super"].parameters[c.PARAM_ORT_SPINNING].string_value == "1"
    assert cfgs["elang"].parameters[c.PARAM_INLINE_STAGE].string_value == ""
    assert cfgs["elang"].instance_group[0].count == 2 and len(cfgs["elang"].instance_group) == 1
    assert all(cfg.dynamic_batching.max_queue_delay_microseconds == 0 for cfg in cfgs.values())
    assert not (repo / "elang" / "1" / "swift").exists()
    assert tune_repository(repo, ort_spinning=True) == []  # already so
    assert tune_repository(repo, metrics_interval_s=0) == ["elang"]
    assert _configs(repo)["elang"].parameters["metrics_interval_s"].string_value == "0.0"
    tune_repository(repo, inline=True)
    meta = json.loads((repo / "elang" / "1" / "swift" / c.INLINE_STAGE_FILE).read_text())
    assert meta["parameters"][c.PARAM_ORT_SPINNING] == "1"  # the copy follows the stage
    with pytest.raises(RepositoryError, match="router instances"):
        tune_repository(repo, router_instances=0)
    with pytest.raises(RepositoryError, match="holds no models"):
        tune_repository(tmp_path / "empty")


def test_tune_sets_threads_and_instances_per_stage_and_the_inline_copy_follows(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    assert tune_repository(repo, threads="swift=1", instances="super=2") == ["super", "swift"]
    cfgs = _configs(repo)
    assert cfgs["swift"].parameters[c.PARAM_INTRA_OP_THREADS].string_value == "1"
    assert cfgs["super"].parameters[c.PARAM_INTRA_OP_THREADS].string_value == "0"  # not named: unchanged
    assert [g.count for g in cfgs["super"].instance_group] == [2] and cfgs["swift"].instance_group[0].count == 1
    meta = json.loads((repo / "elang" / "1" / "swift" / c.INLINE_STAGE_FILE).read_text())
    assert meta["parameters"][c.PARAM_INTRA_OP_THREADS] == "1"  # the router's inline Swift follows
    assert tune_repository(repo, threads="0") == ["swift"]  # every python-ort stage; super was 0 already
    with pytest.raises(RepositoryError, match="routers take --router-instances"):
        tune_repository(repo, instances="elang=2")
    with pytest.raises(RepositoryError, match="streams need engine openvino"):
        tune_repository(repo, streams="swift=2")
    assert tune_repository(repo, streams="2") == []  # "every OpenVINO stage": here there is none


def test_tune_refuses_inline_for_a_native_first_stage(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(
        tmp_path / "ens",
        ClassifierSpec(work / "swift", runtime="python-ensemble"),
        ClassifierSpec(work / "super", runtime="python-ensemble"),
    )
    with pytest.raises(RepositoryError, match="neither a python-ort, a generating nor a segment stage"):
        tune_repository(repo, inline=True)
    assert tune_repository(repo, ort_spinning=True) == ["super_onnx", "swift_onnx"]


def test_tune_command(tiny_repo, tmp_path, capsys):
    from elang.cli import main

    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    assert main(["tune", str(repo)]) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert main(["tune", str(repo), "--stage-timeout-s", "5", "--max-queue-size", "9"]) == 0
    assert _configs(repo)["elang"].parameters[c.PARAM_STAGE_TIMEOUT_S].string_value == "5.0"
    assert _configs(repo)["super"].dynamic_batching.default_queue_policy.max_queue_size == 9
    assert main(["tune", str(repo), "--inline", "off", "--router-instances", "3"]) == 0
    assert "changed: elang" in capsys.readouterr().out
    assert _configs(repo)["elang"].instance_group[0].count == 3
    with pytest.raises(SystemExit):
        main(["tune", str(repo), "--inline", "maybe"])
    assert "expected on or off" in capsys.readouterr().err


def test_only_asked_for_queue_policies_are_written_and_the_router_knows_each_stage_batch_limit(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(
        tmp_path / "r",
        ClassifierSpec(work / "swift"),
        ClassifierSpec(work / "super", max_batch_size=4, max_queue_size=10, queue_timeout_s=2.5),
        RouterSpec(stage_timeout_s=3.0, stage_inflight=1, stage_queue_rows=50),
    )
    cfgs = _configs(repo)
    sup = cfgs["super"].dynamic_batching.default_queue_policy
    assert sup.timeout_action == mc.ModelQueuePolicy.REJECT and sup.allow_timeout_override
    assert (sup.max_queue_size, sup.default_timeout_microseconds) == (10, 2_500_000)
    # A model not asked for one has none (Triton's batcher keeps its prefetch).
    for name in ("swift", "elang"):
        assert cfgs[name].HasField("dynamic_batching"), name
        assert not cfgs[name].dynamic_batching.HasField("default_queue_policy"), name
    params = {k: v.string_value for k, v in cfgs["elang"].parameters.items()}
    assert params[c.PARAM_STAGE_MAX_BATCH] == "swift=64,super=4"
    assert (params[c.PARAM_STAGE_INFLIGHT], params[c.PARAM_STAGE_QUEUE_ROWS]) == ("1", "50")
    assert cfgs["super"].parameters[c.PARAM_FAULT_INJECTION].string_value == "0"
    # Re-exporting a stage with another batch size tells the router.
    write_classifier(repo, "super", ClassifierSpec(work / "super", max_batch_size=16))
    assert refresh_routers(repo, "super") == ["elang"]
    assert _configs(repo)["elang"].parameters[c.PARAM_STAGE_MAX_BATCH].string_value == "swift=64,super=16"
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_failed_write_leaves_the_old_stage_in_place(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    before = (repo / "super" / "config.pbtxt").read_text()
    with pytest.raises(RepositoryError, match="max_batch_size"):
        write_classifier(repo, "super", ClassifierSpec(work / "super", max_batch_size=0))
    assert (repo / "super" / "config.pbtxt").read_text() == before
    assert (repo / "super" / "1" / "model.onnx").is_file()
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")]


def test_tune_queue_deadline_and_fault_knobs(tiny_repo, tmp_path):
    work = tiny_repo["work"]
    repo = write_repository(tmp_path / "r", ClassifierSpec(work / "swift"), ClassifierSpec(work / "super"))
    changed = tune_repository(
        repo, max_queue_size=3, queue_timeout_s=0, stage_timeout_s=2.0, stage_inflight=1, fault_injection=True
    )
    assert changed == ["elang", "super", "swift"]
    cfgs = _configs(repo)
    assert all(cfg.dynamic_batching.default_queue_policy.max_queue_size == 3 for cfg in cfgs.values())
    assert all(cfg.dynamic_batching.default_queue_policy.default_timeout_microseconds == 0 for cfg in cfgs.values())
    params = cfgs["elang"].parameters
    assert params[c.PARAM_STAGE_TIMEOUT_S].string_value == "2.0" and params[c.PARAM_STAGE_INFLIGHT].string_value == "1"
    assert cfgs["super"].parameters[c.PARAM_FAULT_INJECTION].string_value == "1"
    assert c.PARAM_FAULT_INJECTION not in cfgs["elang"].parameters
    # Both 0 on the stages only: their policy goes away, the router keeps its bound.
    assert tune_repository(repo, max_queue_size=0, queue_timeout_s=0, queue_scope="stages") == ["super", "swift"]
    cfgs = _configs(repo)
    assert not any(cfgs[s].dynamic_batching.HasField("default_queue_policy") for s in ("swift", "super"))
    assert cfgs["elang"].dynamic_batching.default_queue_policy.max_queue_size == 3
    assert tune_repository(repo, max_queue_size=7, queue_scope="routers") == ["elang"]
    assert _configs(repo)["elang"].dynamic_batching.default_queue_policy.max_queue_size == 7
    for bad, match in (
        ({"stage_timeout_s": 0}, "stage timeout"),
        ({"max_queue_size": -1}, "max queue size"),
        ({"max_queue_size": 1, "queue_scope": "super"}, "queue scope"),
    ):
        with pytest.raises(RepositoryError, match=match):
            tune_repository(repo, **bad)


def test_an_int8_stage_beyond_the_bounds_is_warned_about_and_one_within_is_not():
    from elang.export.classify.stage import transform_warning

    assert transform_warning({"name": "int8", "texts": 60, "argmax_agreement": 0.995, "accuracy_fp32": 0.8,
                              "accuracy_new": 0.797}) is None  # fmt: skip
    w = transform_warning({"name": "int8", "texts": 60, "argmax_agreement": 0.983, "accuracy_fp32": 0.8,
                           "accuracy_new": 0.7833})  # fmt: skip
    assert "lost 1.67 pt" in w and "98.30%" in w and "without --quantize" in w
    w = transform_warning({"name": "int8", "texts": 60, "argmax_agreement": 0.97, "accuracy_fp32": None,
                           "accuracy_new": None})  # fmt: skip
    assert "lost" not in w and "97.00%" in w
