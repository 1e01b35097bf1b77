"""Remote stages' configuration (elang.runtimes.remote) and `elang tune --remote-stages`."""

from __future__ import annotations

import pytest

from elang import contract as c
from elang.repository.writer import RepositoryError, parameter, parse_config, tune_repository
from elang.runtimes.remote import ENV_REMOTE_STAGES, parse_remote_stages, remote_stages_from


def test_remote_stage_urls():
    got = parse_remote_stages(" super=grpc://super-pool:8001/super_bf16 , ex_4=grpcs://10.0.0.2:443 ")
    assert got["super"].url == "super-pool:8001" and got["super"].model == "super_bf16" and not got["super"].tls
    assert got["ex_4"].model == "ex_4" and got["ex_4"].tls and got["ex_4"].where == "grpcs://10.0.0.2:443/ex_4"
    assert parse_remote_stages("") == {}
    for bad, match in [
        ("super", "not STAGE=grpc://"),
        ("super=http://h:1/super", "not STAGE=grpc://"),
        ("super=grpc://host/super", "not STAGE=grpc://"),
        ("super=grpc://h:1,super=grpc://h:2", "twice"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_remote_stages(bad)
    with pytest.raises(ValueError, match="not a stage of this router"):
        parse_remote_stages("other=grpc://h:1", ("swift", "super"))


def test_the_environment_replaces_the_config(monkeypatch):
    params = {c.PARAM_REMOTE_STAGES: "super=grpc://a:1"}
    assert remote_stages_from(params, ("swift", "super"))["super"].url == "a:1"
    monkeypatch.setenv(ENV_REMOTE_STAGES, "super=grpc://b:2/super")
    assert remote_stages_from(params, ("swift", "super"))["super"].url == "b:2"
    monkeypatch.setenv(ENV_REMOTE_STAGES, "")
    assert remote_stages_from(params, ("swift", "super")) == {}


def test_tune_sets_each_routers_remote_stages_and_drops_their_inline_copies(tiny_repo, tmp_path):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo["repo"], repo)

    def router():
        return parse_config((repo / "elang" / "config.pbtxt").read_text())

    assert parameter(router(), c.PARAM_INLINE_STAGE) == "swift"
    assert tune_repository(repo, remote_stages="swift=grpc://h:1,super=grpc://h:1/super_bf16") == ["elang"]
    assert parameter(router(), c.PARAM_REMOTE_STAGES) == "swift=grpc://h:1/swift,super=grpc://h:1/super_bf16"
    assert parameter(router(), c.PARAM_INLINE_STAGE) == "" and not (repo / "elang" / "1" / "swift").exists()
    tune_repository(repo, remote_stages="")
    assert parameter(router(), c.PARAM_REMOTE_STAGES) == ""
    with pytest.raises(RepositoryError, match="not STAGE=grpc://"):
        tune_repository(repo, remote_stages="super=nowhere")
