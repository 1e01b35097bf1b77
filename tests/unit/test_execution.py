"""The router's execution model (elang.core.execution) driven by plain stage functions."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from elang.core.execution import CascadeExecutor, FailureKind, Job, StageCallError, StageLimits
from elang.core.routing import get_policy
from elang.core.texts import encode_texts

ENERGY = get_policy("energy")
LABELS = 3


def _logits(seed: int, n: int = 100) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, LABELS)).astype(np.float32)


TABLES = {"swift": _logits(1), "super": _logits(2), "third": _logits(3)}


def _ids(texts: np.ndarray) -> list[int]:
    return [int(t[0].decode().split()[1]) for t in texts]


class Harness:
    """An executor over table-lookup stages; records calls and replies."""

    def __init__(self, limits: list[StageLimits], delays: dict[str, float] | None = None, inline: bool = True):
        self.calls: list[tuple[str, list[int]]] = []
        self.replies: list[Job] = []
        self.delays = delays or {}
        self.fail: dict[str, BaseException] = {}
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)

        async def call(name: str, texts: np.ndarray, timeout_s: float) -> np.ndarray:
            with self.lock:
                self.calls.append((name, _ids(texts)))
            await asyncio.sleep(self.delays.get(name, 0.0))
            if name in self.fail:
                raise self.fail[name]
            return TABLES[name][_ids(texts)]

        def reply(job: Job) -> None:
            with self.got:
                self.replies.append(job)
                self.got.notify_all()

        def first(texts: np.ndarray) -> np.ndarray:
            with self.lock:
                self.calls.append((limits[0].name, _ids(texts)))
            return TABLES[limits[0].name][_ids(texts)]

        self.ex = CascadeExecutor(limits, ENERGY, call, reply, local_stages={limits[0].name: first} if inline else None)

    def job(self, ids: list[int], threshold: float | list[float], cancelled: bool = False) -> Job:
        thr = threshold if isinstance(threshold, list) else [threshold] * (len(self.ex.stages) - 1)
        return Job(encode_texts([f"text {i}" for i in ids]), thr, is_cancelled=lambda: cancelled)

    def wait(self, n: int, timeout: float = 5.0) -> list[Job]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.replies) >= n, timeout), f"{len(self.replies)} of {n} replies"
            return list(self.replies)

    def stage_calls(self, name: str) -> list[list[int]]:
        with self.lock:
            return [rows for n, rows in self.calls if n == name]


def _pair(**super_limits) -> list[StageLimits]:
    return [StageLimits("swift"), StageLimits("super", **super_limits)]


def test_rows_that_stay_on_swift_are_answered_by_run_and_the_rest_later():
    h = Harness(_pair())
    jobs = [h.job([0, 1, 2], np.inf), h.job([3, 4], -np.inf)]
    assert h.ex.run(jobs) == [True, False]
    assert jobs[0].route.tolist() == [0, 0, 0] and np.allclose(jobs[0].logits, TABLES["swift"][[0, 1, 2]])
    (done,) = h.wait(1)
    assert done is jobs[1] and done.failure is None
    assert done.route.tolist() == [1, 1] and np.allclose(done.logits, TABLES["super"][[3, 4]])
    assert np.allclose(done.first_logits, TABLES["swift"][[3, 4]])  # energy comes from the first stage
    assert h.stage_calls("super") == [[3, 4]]
    h.ex.close()


def test_each_row_escalates_by_its_own_energy():
    h = Harness(_pair())
    ids = list(range(20))
    thr = float(np.median(ENERGY.score(TABLES["swift"][ids])))
    (job,) = [h.job(ids, thr)]
    h.ex.run([job])
    h.wait(1)
    want = ENERGY.score(TABLES["swift"][ids]) > thr
    assert job.route.tolist() == want.astype(int).tolist()
    assert h.stage_calls("super") == [np.flatnonzero(want).tolist()]
    h.ex.close()


def test_calls_never_exceed_the_stage_batch_limit():
    h = Harness(_pair(max_batch=3, max_inflight=1))
    jobs = [h.job(list(range(0, 7)), -np.inf), h.job(list(range(7, 12)), -np.inf)]
    h.ex.run(jobs)
    h.wait(2)
    sizes = [len(rows) for rows in h.stage_calls("super")]
    assert max(sizes) <= 3 and sum(sizes) == 12
    for job, ids in zip(jobs, (range(0, 7), range(7, 12))):
        assert job.failure is None and np.allclose(job.logits, TABLES["super"][list(ids)])
    h.ex.close()


def test_a_slow_stage_fails_escalated_requests_at_the_deadline_and_never_blocks_swift():
    h = Harness(_pair(timeout_s=0.3), delays={"super": 30.0})
    slow = h.job([1, 2], -np.inf)
    t0 = time.monotonic()
    assert h.ex.run([slow]) == [False]
    # Meanwhile, Swift-only requests are answered by run() itself.
    fast = h.job([3], np.inf)
    assert h.ex.run([fast]) == [True] and fast.failure is None
    assert slow.failure is None  # answered while the slow request still waits for its Super
    (failed,) = h.wait(1)
    waited = time.monotonic() - t0
    assert 0.25 < waited < 10  # the 0.3 s deadline, not Super's 30 s (an order of magnitude, not a timing)
    assert failed.failure.kind == FailureKind.DEADLINE and failed.failure.stage == "super"
    assert "stage_timeout_s=0.3" in failed.failure.message and "'super'" in failed.failure.message
    # A request's own (shorter) timeout bounds the wait too.
    t0 = time.monotonic()
    own = Job(encode_texts(["text 5"]), [-np.inf], timeout_s=0.1)
    h.ex.run([own])
    assert h.wait(2)[1] is own and time.monotonic() - t0 < 10
    assert "request's own timeout of 0.1 s" in own.failure.message
    snap = h.ex.snapshot()["super"]
    assert snap["abandoned"] == 2 and snap["inflight"] == 0  # the slots came back for later calls
    h.ex.close()


def test_rows_waiting_for_a_busy_stage_also_meet_the_deadline():
    h = Harness(_pair(timeout_s=0.4, max_inflight=1), delays={"super": 30.0})
    t0 = time.monotonic()
    h.ex.run([h.job([1], -np.inf)])
    time.sleep(0.2)
    h.ex.run([h.job([2], -np.inf)])  # waits in the router's queue: the one slot is busy
    replies = h.wait(2)
    assert [j.failure.kind for j in replies] == [FailureKind.DEADLINE] * 2
    # The first call was given up at its deadline (0.4 s), which freed the slot for the second
    # request; its own deadline (0.2 + 0.4 s) still held.
    assert time.monotonic() - t0 < 10  # deadlines of 0.4 s, not Super's 30 s
    assert h.stage_calls("super") == [[1], [2]]
    assert h.ex.snapshot()["super"]["abandoned"] == 2
    h.ex.close()


def test_excess_rows_are_refused_at_once_as_overloaded():
    h = Harness(_pair(max_inflight=1, max_queued_rows=4, timeout_s=5.0), delays={"super": 1.0})
    h.ex.run([h.job([0], -np.inf)])  # occupies the only slot
    time.sleep(0.05)
    t0 = time.monotonic()
    h.ex.run([h.job([1, 2, 3], -np.inf), h.job([4, 5], -np.inf), h.job([6], -np.inf)])
    (refused,) = h.wait(1, timeout=5)
    assert time.monotonic() - t0 < 5  # at once, not after Super's 1 s call or the 5 s deadline
    assert not any(j.failure is None for j in h.replies)  # refused before any escalated call came back
    assert refused.failure.kind == FailureKind.OVERLOADED and refused.texts.shape[0] == 2
    assert "stage_queue_rows=4" in refused.failure.message and "retry later" in refused.failure.message
    replies = h.wait(4)
    assert sum(j.failure is None for j in replies) == 3
    h.ex.close()


def test_a_cancelled_request_is_never_sent_to_the_next_stage():
    h = Harness(_pair(max_inflight=1), delays={"super": 0.3})
    first = h.job([0], -np.inf)
    gone = h.job([1, 2, 3], -np.inf, cancelled=True)
    h.ex.run([first])
    time.sleep(0.05)
    h.ex.run([gone])
    replies = h.wait(2)
    assert first.failure is None
    assert gone.failure.kind == FailureKind.CANCELLED and "cancelled by its client" in gone.failure.message
    assert h.stage_calls("super") == [[0]]
    assert replies == [first, gone]  # checked when its turn came: once the slot was free
    h.ex.close()


def test_a_stage_error_fails_only_the_requests_with_rows_there():
    h = Harness(_pair())
    h.fail["super"] = StageCallError("Stub process 'super_0_0' is not healthy.")
    jobs = [h.job([0, 1], np.inf), h.job([2, 3], [-np.inf])]
    assert h.ex.run(jobs) == [True, False]
    (failed,) = h.wait(1)
    assert jobs[0].failure is None
    assert failed.failure.kind == FailureKind.ERROR and "super" in failed.failure.message
    assert "not healthy" in failed.failure.message
    h.fail["super"] = StageCallError("Exceeds maximum queue size", overloaded=True)
    h.ex.run([h.job([4], -np.inf)])
    assert h.wait(2)[1].failure.kind == FailureKind.OVERLOADED
    h.ex.close()


def test_a_first_stage_failure_fails_the_whole_batch_without_a_reply():
    h = Harness(_pair(), inline=False)
    h.fail["swift"] = RuntimeError("swift is down")
    jobs = [h.job([0], 0.0), h.job([1], 0.0)]
    assert h.ex.run(jobs) == [True, True]
    assert all(j.failure.stage == "swift" and "swift is down" in j.failure.message for j in jobs)
    assert h.replies == []  # the caller answers finished jobs itself
    h.ex.close()


def test_first_stage_over_the_call_path_is_chunked_and_timed():
    limits = [StageLimits("swift", max_batch=4, timeout_s=0.3), StageLimits("super")]
    h = Harness(limits, inline=False)
    assert h.ex.run([h.job(list(range(10)), np.inf)]) == [True]
    assert [len(r) for r in h.stage_calls("swift")] == [4, 4, 2]
    h.delays["swift"] = 5.0
    t0 = time.monotonic()
    (job,) = [h.job([1], np.inf)]
    h.ex.run([job])
    assert job.failure.kind == FailureKind.DEADLINE and time.monotonic() - t0 < 4  # 0.3 s deadline, not 5 s
    h.ex.close()


def test_three_stages_and_wrong_shapes():
    h = Harness([StageLimits("swift"), StageLimits("super"), StageLimits("third")])
    job = h.job([0, 1, 2], [-np.inf, np.inf])  # everything to super, nothing further
    h.ex.run([job])
    h.wait(1)
    assert job.route.tolist() == [1, 1, 1] and h.stage_calls("third") == []
    job = h.job([5, 6], [-np.inf, -np.inf])
    h.ex.run([job])
    h.wait(2)
    assert job.route.tolist() == [2, 2] and np.allclose(job.logits, TABLES["third"][[5, 6]])

    async def bad(name, texts, timeout_s):
        return np.zeros((len(texts), LABELS + 1), dtype=np.float32)

    h.ex.call_stage = bad
    job = h.job([7], [-np.inf, -np.inf])
    h.ex.run([job])
    assert "labels" in h.wait(3)[2].failure.message
    with pytest.raises(ValueError, match="threshold"):
        h.ex.run([h.job([1], [0.0])])
    h.ex.close()


def test_close_answers_what_still_waits():
    h = Harness(_pair(max_inflight=1), delays={"super": 30.0})
    h.ex.run([h.job([0], -np.inf), h.job([1], -np.inf)])
    time.sleep(0.1)
    h.ex.close()
    replies = h.wait(1)
    assert "shutting down" in replies[0].failure.message


def test_limits_are_checked():
    with pytest.raises(ValueError, match="max_batch"):
        StageLimits("super", max_batch=0)
    with pytest.raises(ValueError, match="timeout_s"):
        StageLimits("super", timeout_s=0)
