"""Cascades of more than two stages that pass state on (multi-exit segments) and the patience
policy's per-row state, in the routing core and the executor."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from elang.core.execution import CascadeExecutor, Job, StageLimits, StageOutput
from elang.core.routing import cascade_offline, get_policy
from elang.core.texts import encode_texts

STAGES = 4
LABELS = 3
N = 60
# Per text id, the logits of every exit.
TABLE = np.random.default_rng(5).normal(scale=2.0, size=(N, STAGES, LABELS)).astype(np.float32)


def _ids(texts: np.ndarray) -> list[int]:
    return [int(t[0].decode().split()[1]) for t in texts]


class Segments:
    """Stage k returns exit k's logits and a carry that encodes (text id, k) in a hidden state whose
    width is the request's own: later stages read the id back from the carry alone."""

    def __init__(self, policy, temperatures=1.0, delays: dict[str, float] | None = None, local: bool = False) -> None:  # noqa: ANN001
        self.threads: set[str] = set()  # where the later segments ran
        self.replies: list[Job] = []
        self.seen: list[tuple[int, list[int], int]] = []  # (stage, ids, width)
        self.got = threading.Condition()
        self.delays = delays or {}
        names = [f"seg{k}" for k in range(STAGES)]

        def first(texts: np.ndarray) -> StageOutput:
            ids = _ids(texts)
            width = 3 + len(ids)  # the batch's padded length
            return StageOutput(TABLE[ids, 0], self._carry(ids, 0, width))

        def segment(name: str, inputs) -> StageOutput:  # noqa: ANN001
            k = names.index(name)
            self.threads.add(threading.current_thread().name)
            assert isinstance(inputs, dict), "later segments get the carry, not texts"
            hidden, mask = inputs["HIDDEN"], inputs["MASK"]
            ids = [int(x) for x in hidden[:, 0, 0]]
            assert np.all(hidden[:, 0, 1] == k - 1), "each row arrives with its previous segment's state"
            assert np.all(mask[:, 0] == 1)
            self.seen.append((k, ids, hidden.shape[1]))
            return StageOutput(TABLE[ids, k], self._carry(ids, k, hidden.shape[1]))

        async def call(name: str, inputs, timeout_s: float) -> StageOutput:  # noqa: ANN001
            await asyncio.sleep(self.delays.get(name, 0.0))
            return segment(name, inputs)

        def in_process(name: str):  # noqa: ANN202 - a later segment run by the executor itself
            def run(inputs) -> StageOutput:  # noqa: ANN001
                time.sleep(self.delays.get(name, 0.0))
                return segment(name, inputs)

            return run

        def reply(job: Job) -> None:
            with self.got:
                self.replies.append(job)
                self.got.notify_all()

        limits = [StageLimits(n, max_batch=8) for n in names]
        local_stages = {names[0]: first}
        if local:
            local_stages.update({n: in_process(n) for n in names[1:]})
        self.ex = CascadeExecutor(limits, policy, call, reply, temperatures, local_stages=local_stages)

    @staticmethod
    def _carry(ids: list[int], k: int, width: int) -> dict[str, np.ndarray]:
        hidden = np.zeros((len(ids), width, 2), dtype=np.float32)
        hidden[:, :, 0] = np.asarray(ids)[:, None]
        hidden[:, :, 1] = k
        return {"HIDDEN": hidden, "MASK": np.ones((len(ids), width), dtype=np.int64)}

    def run(self, batches: list[list[int]], threshold: float) -> list[Job]:
        jobs = [Job(encode_texts([f"text {i}" for i in ids]), [threshold] * (STAGES - 1)) for ids in batches]
        finished = self.ex.run(jobs)
        with self.got:
            want = finished.count(False)
            assert self.got.wait_for(lambda: len(self.replies) >= want, 5.0)
        return jobs


@pytest.mark.parametrize("local", [False, True], ids=["over-calls", "in-process"])
@pytest.mark.parametrize(
    ("policy", "threshold"), [("softmax", 0.8), ("entropy", 0.5), ("energy", -2.5), ("patience", 1)]
)
def test_every_row_gets_the_offline_answer_in_order(policy, threshold, local):
    pol = get_policy(policy)
    temps = [1.0, 1.3, 0.8, 1.1]
    seg = Segments(pol, temps, local=local)
    try:
        batches = [list(range(0, 7)), list(range(7, 20)), list(range(20, 60))]
        jobs = seg.run(batches, threshold)
    finally:
        seg.ex.close()
    route, logits, scores = cascade_offline(TABLE, pol, threshold, temps)
    for ids, job in zip(batches, jobs, strict=True):
        assert job.failure is None
        np.testing.assert_array_equal(job.route, route[ids])
        np.testing.assert_allclose(job.logits, logits[ids])
        np.testing.assert_allclose(job.scores, scores[ids])
    assert len(set(route.tolist())) >= 3, "the thresholds must spread rows over several exits"
    if local:  # later segments ran on the executor's workers, never on its event loop
        assert seg.threads and all(t.startswith("elang-local") for t in seg.threads)


def test_a_hung_in_process_segment_fails_by_its_deadline_and_frees_the_others():
    pol = get_policy("softmax")
    seg = Segments(pol, delays={"seg1": 1.0}, local=True)
    seg.ex.stages[1].limits = StageLimits("seg1", max_batch=8, timeout_s=0.2)
    try:
        t0 = time.monotonic()
        stuck = Job(encode_texts([f"text {i}" for i in range(4)]), [1.01] * 3)  # every row past exit 0
        free = Job(encode_texts([f"text {i}" for i in range(4, 8)]), [0.0] * 3)  # every row at exit 0
        assert seg.ex.run([stuck, free]) == [False, True]
        with seg.got:
            assert seg.got.wait_for(lambda: len(seg.replies) >= 1, 5.0)
        took = time.monotonic() - t0
    finally:
        seg.ex.close()
    assert free.failure is None and set(free.route.tolist()) == {0}
    assert stuck.failure is not None and stuck.failure.kind.value == "deadline"
    assert "seg1" in stuck.failure.message and took < 0.9, (stuck.failure.message, took)


@pytest.mark.parametrize("policy", ["softmax", "patience"])
def test_thresholds_that_force_the_first_or_the_last_exit(policy):
    pol = get_policy(policy)
    first, last = (0.0, 1.01) if policy == "softmax" else (0, STAGES)
    for threshold, want in ((first, 0), (last, STAGES - 1)):
        seg = Segments(pol)
        try:
            jobs = seg.run([list(range(N))], threshold)
        finally:
            seg.ex.close()
        assert set(jobs[0].route.tolist()) == {want}


def test_carries_of_requests_with_other_widths_are_padded_and_trimmed_back():
    seg = Segments(get_policy("softmax"))
    try:
        a = Job(encode_texts([f"text {i}" for i in range(0, 3)]), [1.01] * 3)
        b = Job(encode_texts([f"text {i}" for i in range(3, 12)]), [1.01] * 3)
        seg.ex.run([a])
        seg.ex.run([b])
        with seg.got:
            assert seg.got.wait_for(lambda: len(seg.replies) >= 2, 5.0)
    finally:
        seg.ex.close()
    assert a.carry["HIDDEN"].shape[1] == 6 and b.carry["HIDDEN"].shape[1] == 12  # each keeps its own width
    assert np.all(a.carry["HIDDEN"][:, :, 1] == STAGES - 1)
    np.testing.assert_array_equal(a.route, [STAGES - 1] * 3)


def test_patience_state_is_kept_per_row():
    pol = get_policy("patience")
    # Row 0 agrees from exit 0 on; row 1 flips at exit 1, then agrees; row 2 never agrees twice.
    labels = np.array([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 1]])
    z = np.full((3, 4, 3), -5.0)
    for r in range(3):
        z[r, np.arange(4), labels[r]] = 5.0
    route, _, scores = cascade_offline(z, pol, 1)
    np.testing.assert_array_equal(route, [1, 2, 3])
    route, _, scores = cascade_offline(z, pol, 2)
    np.testing.assert_array_equal(route, [2, 3, 3])
    np.testing.assert_array_equal(scores, [2, 2, 0])
    # Through the executor, with the rows split over requests: the same answers.
    seg = Segments(pol)
    global TABLE
    saved, TABLE = TABLE, np.zeros_like(TABLE)
    TABLE[:3] = z
    try:
        jobs = seg.run([[0], [1, 2]], 2)
    finally:
        TABLE = saved
        seg.ex.close()
    assert jobs[0].route.tolist() == [2] and jobs[1].route.tolist() == [3, 3]


def test_patience_refuses_to_score_without_state():
    with pytest.raises(ValueError, match="per-row state"):
        get_policy("patience").decide(np.zeros((2, 3)), 1, 1.0, None, None)
    with pytest.raises(ValueError, match="agreement across stages"):
        get_policy("patience").score(np.zeros((2, 3)))


def test_a_pair_router_skips_scoring_at_the_last_stage_and_routes_the_same():
    pol = get_policy("softmax")
    seg = Segments(pol)
    seg.ex.keep_scores = False
    try:
        jobs = seg.run([list(range(N))], 0.8)
    finally:
        seg.ex.close()
    route, _, scores = cascade_offline(TABLE, pol, 0.8)
    np.testing.assert_array_equal(jobs[0].route, route)
    last = route == STAGES - 1
    assert last.any()  # those keep the score of the step that escalated them: the last stage is not scored
    np.testing.assert_allclose(jobs[0].scores[~last], scores[~last])
