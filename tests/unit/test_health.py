"""The deep health check's decisions, without a server (tests/integration/test_faults.py runs it on one)."""

from __future__ import annotations

from elang import contract as c
from elang.ops.health import PROBE_NEW_TOKENS, HealthReport, ModelCheck, _probe_body, deep_check


def _config(name: str, outputs: list[str], **params: str) -> dict:
    return {
        "name": name,
        "input": [{"name": c.TEXT}],
        "output": [{"name": o} for o in outputs],
        "parameters": {k: {"string_value": v} for k, v in params.items()},
    }


def test_routers_are_probed_through_every_stage_under_their_policy():
    energy = _probe_body(_config("elang", [c.LABEL, c.LOGITS, c.ROUTE], stages="swift,super", policy="energy"))
    assert energy["parameters"][c.THRESHOLD_PARAM] == "-inf"
    soft = _probe_body(_config("elang", [c.LOGITS, c.ROUTE], stages="a,b,c", policy="softmax"))
    assert soft["parameters"][c.THRESHOLD_PARAM] == "inf,inf"  # softmax escalates below the threshold
    stage = _probe_body(_config("super", [c.LOGITS]))
    assert stage["inputs"][0]["data"] and c.THRESHOLD_PARAM not in stage["parameters"]
    assert _probe_body(_config("super_tokenizer", ["input_ids"])) is None  # not a text model


def test_generating_stages_and_routers_are_probed_with_a_short_cap():
    stage_cfg = _config("super", [c.OUTPUT_TEXT, c.TOKEN_ENERGY])
    stage_cfg["input"].append({"name": c.MAX_NEW_TOKENS})
    stage = _probe_body(stage_cfg)
    assert [o["name"] for o in stage["outputs"]] == [c.OUTPUT_TEXT]
    cap = {i["name"]: i for i in stage["inputs"]}[c.MAX_NEW_TOKENS]
    assert cap["datatype"] == "INT32" and cap["data"] == [PROBE_NEW_TOKENS] and not stage["parameters"]
    router = _probe_body(
        _config("elang", [c.OUTPUT_TEXT, c.ROUTE], stages="swift,super", policy="mean", task="generate")
    )
    assert [i["name"] for i in router["inputs"]] == [c.TEXT]
    assert router["parameters"] == {c.THRESHOLD_PARAM: "-inf", c.MAX_NEW_TOKENS_PARAM: PROBE_NEW_TOKENS}


def test_verdicts_and_what_to_reload():
    dead = "Stub process 'super_0_0' is not healthy."
    report = HealthReport(
        live=True,
        checks=[
            ModelCheck("elang", "broken", 1.0, f"stage 'super' failed: {dead}"),
            ModelCheck("super", "broken", 1.0, dead),
            ModelCheck("swift", "ok", 0.01),
        ],
    )
    assert not report.healthy
    assert report.failing() == ["super"]  # the router only failed because its stage did
    assert "UNHEALTHY" in report.summary() and "super" in report.summary()
    own = HealthReport(
        live=True, checks=[ModelCheck("elang", "broken", 1.0, "Stub process 'elang_0_0' is not healthy.")]
    )
    assert own.failing() == ["elang"]
    busy = HealthReport(live=True, checks=[ModelCheck("elang", "overloaded", 0.01, "Exceeds maximum queue size")])
    assert busy.healthy
    slow = HealthReport(live=True, checks=[ModelCheck("elang", "slow", 10.0, "no answer within 10 s")])
    assert not slow.healthy
    slow.slow_is_alive = True
    assert slow.healthy


def test_no_server_is_unhealthy_with_a_clear_message():
    from elang.ops.server import free_port

    report = deep_check(f"127.0.0.1:{free_port()}", timeout_s=2)
    assert not report.healthy and "no server at" in report.summary()


def test_a_slow_router_behind_a_slow_stage_is_not_reloaded():
    report = HealthReport(
        live=True,
        checks=[ModelCheck("elang", "slow", 10.0, "no answer within 10 s"), ModelCheck("super", "slow", 10.0, "")],
    )
    assert report.failing() == ["super"] and report.slow and not report.broken


class _Scripted:
    """A supervisor whose checks return scripted reports and whose heals are recorded."""

    def __init__(self, reports, **kwargs):
        from elang.ops.supervisor import Supervisor

        class S(Supervisor):
            def check(self_inner):
                return reports.pop(0)

            def _heal(self_inner, report):
                self_inner._open.action = "restart"
                self.heals.append(self_inner.now())

        class _Running:
            pid = 1

            def poll(self):
                return None

        class _Server:
            model_control = "none"
            process = _Running()

        self.heals: list[float] = []
        self.sup = S(_Server(), heal="restart", notify=lambda m: None, **kwargs)


def test_supervisor_heals_errors_after_n_checks_and_slowness_only_after_a_while():
    ok = HealthReport(live=True, checks=[ModelCheck("super", "ok", 0.01)])
    dead = HealthReport(
        live=True, checks=[ModelCheck("super", "broken", 1.0, "Stub process 'super_0_0' is not healthy.")]
    )
    slow = HealthReport(live=True, checks=[ModelCheck("super", "slow", 10.0, "no answer within 10 s")])
    s = _Scripted([dead, dead, ok], failures=2)
    for _ in range(3):
        s.sup.step()
    assert len(s.heals) == 1 and s.sup.events[0].healed_s is not None and s.sup.events[0].action == "restart"
    s = _Scripted([slow, slow, slow, ok], failures=2, slow_after_s=3600)
    for _ in range(4):
        s.sup.step()
    assert s.heals == []  # a stall that passes is reported, not healed
    assert s.sup.events[0].action.startswith("none needed")
    s = _Scripted([slow, slow], failures=2, slow_after_s=0)
    s.sup.step()
    assert len(s.heals) == 1  # slow for slow_after_s: healed
