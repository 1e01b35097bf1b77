"""The router's execution model: how a cascade calls its stages, with deadlines, bounded
queues, cancellation and per-stage batch limits.

Triton-free (numpy, asyncio, threading): the `elang` Triton adapter builds one
:class:`CascadeExecutor` per router instance and calls :meth:`CascadeExecutor.run` from
``execute``; the unit tests drive it with plain functions. Any cascade (two stages or more,
classifiers now, generating stages later) runs through it.

* **Stage 0 at once.** ``run`` computes stage 0 for every row of the dynamic batch in the
  caller's thread: in-process for an inline stage, otherwise a call with a deadline. A
  request whose rows all stay on stage 0 is answered right there (``run`` says which), so a
  slow or dead later stage never delays it.
* **Later stages asynchronously.** Escalated rows go to the next stage's queue, which an
  asyncio loop on a thread of its own serves; ``execute`` returns and the router takes its
  next batch while they wait. Their requests are answered later through ``reply``.
* **Per stage**: a call carries at most ``max_batch`` rows (the stage's ``max_batch_size``);
  at most ``max_inflight`` calls are outstanding; at most ``max_queued_rows`` rows wait, and
  rows beyond that are refused at once (``overloaded``); a row group not answered within
  ``timeout_s`` of entering the stage's queue fails with an error that names the stage and
  the deadline (``deadline``). A call past its deadline keeps running in the stage (Triton
  cannot interrupt an ``execute``); its answer is dropped and its slot is given back.
* **Cancellation**: before rows are sent to a stage, the request's ``is_cancelled`` is
  asked; a cancelled request (a gRPC client that gave up or whose deadline passed) is
  answered ``cancelled`` and costs that stage nothing.
* A request is answered exactly once: when every row has an answer, or as soon as one of
  its row groups fails (the failure names the stage and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from elang.routing import Policy, text_lengths

log = logging.getLogger(__name__)


class FailureKind(str, enum.Enum):
    """Why a request got no answer from a stage."""

    DEADLINE = "deadline"  # no answer within the stage's timeout
    OVERLOADED = "overloaded"  # a queue was full (the router's or Triton's): retry later
    CANCELLED = "cancelled"  # the client gave up before the rows were sent
    ERROR = "error"  # the stage answered with an error, or is down


@dataclass(frozen=True)
class StageFailure:
    stage: str
    kind: FailureKind
    message: str


class StageCallError(RuntimeError):
    """A stage call failed; ``overloaded`` when the stage refused it for a full queue."""

    def __init__(self, message: str, overloaded: bool = False) -> None:
        super().__init__(message)
        self.overloaded = overloaded


@dataclass(frozen=True)
class StageLimits:
    """How the router may call one stage."""

    name: str
    max_batch: int = 64
    max_inflight: int = 2
    timeout_s: float = 60.0
    max_queued_rows: int = 1024

    def __post_init__(self) -> None:
        for key in ("max_batch", "max_inflight", "max_queued_rows"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"stage {self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if not self.timeout_s > 0:
            raise ValueError(f"stage {self.name}: timeout_s must be > 0, got {self.timeout_s}")


class StageObserver(Protocol):
    def stage_call(self, stage: str, seconds: float, rows: int) -> None: ...


StageCall = Callable[[str, np.ndarray, float], Awaitable[np.ndarray]]
"""``await call(stage_name, texts [rows, 1], timeout_s)`` -> logits [rows, labels]."""


class Job:
    """One client request moving through the cascade.

    ``thresholds[k]`` decides escalation from stage k to k+1. After the job is done,
    ``failure`` is None and ``logits``/``route``/``first_logits`` hold the answer, or
    ``failure`` says which stage failed and why.
    """

    def __init__(
        self,
        texts: np.ndarray,
        thresholds: Sequence[float],
        context: Any = None,
        is_cancelled: Callable[[], bool] | None = None,
        timeout_s: float = 0.0,
    ) -> None:
        self.texts = np.asarray(texts, dtype=np.object_).reshape(-1, 1)
        self.n = len(self.texts)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.context = context
        self.is_cancelled = is_cancelled or (lambda: False)
        # The request's own timeout (Triton's request timeout, 0: none) bounds every stage's wait.
        self.timeout_s = float(timeout_s)
        self.deadline = time.monotonic() + self.timeout_s if self.timeout_s > 0 else float("inf")
        self.logits: np.ndarray | None = None
        self.first_logits: np.ndarray | None = None
        self.route = np.zeros(self.n, dtype=np.int32)
        self.failure: StageFailure | None = None
        self.done = False
        self.parts: set[_Part] = set()  # row groups not yet answered


@dataclass(eq=False)
class _Part:
    """Rows of one job waiting for, or being answered by, one stage."""

    job: Job
    rows: np.ndarray
    stage: int
    deadline: float = 0.0
    timer: asyncio.TimerHandle | None = None
    call: _Call | None = None  # set once dispatched


@dataclass(eq=False)
class _Call:
    stage: int
    parts: list[_Part]
    started: float
    released: bool = False


@dataclass
class _StageState:
    limits: StageLimits
    queue: deque = field(default_factory=deque)
    queued_rows: int = 0
    inflight: int = 0
    calls: int = 0
    abandoned: int = 0
    live: set = field(default_factory=set)  # calls not yet answered (abandoned ones included)


class CascadeExecutor:
    """Runs jobs through ``stages`` (see the module docstring).

    ``call_stage`` calls a stage by name (a BLS call in Triton); ``first_stage``, when
    given, computes stage 0 in-process instead. ``reply(job)`` is called once per job that
    :meth:`run` did not report as finished, from the executor's thread.
    """

    def __init__(
        self,
        stages: Sequence[StageLimits],
        policy: Policy,
        call_stage: StageCall,
        reply: Callable[[Job], None],
        temperature: float = 1.0,
        first_stage: Callable[[np.ndarray], np.ndarray] | None = None,
        observer: StageObserver | None = None,
    ) -> None:
        if len(stages) < 1:
            raise ValueError("a cascade needs at least one stage")
        self.stages = [_StageState(s) for s in stages]
        self.policy = policy
        self.temperature = float(temperature)
        self.call_stage = call_stage
        self.reply = reply
        self.first_stage = first_stage
        self.observer = observer
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="elang-cascade", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- caller's thread
    def run(self, jobs: Sequence[Job]) -> list[bool]:
        """Stage 0 for every row of ``jobs`` now; escalate the rest.

        Returns, per job, True when it is finished (answered or failed by stage 0: the caller
        answers it) or False when it went on to later stages (``reply`` answers it).
        """
        if not jobs:
            return []
        steps = len(self.stages) - 1
        for job in jobs:
            if job.thresholds.shape != (steps,):
                raise ValueError(f"a job needs {steps} threshold(s), got {job.thresholds.tolist()}")
        texts = np.concatenate([j.texts for j in jobs])
        first = self.stages[0].limits
        try:
            logits = _checked(self._first_stage(texts), len(texts), None)
        except Exception as exc:  # noqa: BLE001 - stage 0 failing fails this batch, not the router
            failure = _failure(first, exc)
            for job in jobs:
                job.failure, job.done = failure, True
            return [True] * len(jobs)
        escalated: list[_Part] = []
        start = 0
        for job in jobs:
            job.first_logits = logits[start : start + job.n]
            job.logits = job.first_logits.copy()
            start += job.n
            if steps:
                lengths = text_lengths(job.texts) if self.policy.uses_lengths else None
                rows = np.flatnonzero(self.policy.unsure(job.logits, job.thresholds[0], self.temperature, lengths))
                if rows.size:
                    part = _Part(job, rows, 1)
                    job.parts.add(part)
                    escalated.append(part)
            job.done = not job.parts
        # Decided before the hand-off: once the loop has the escalated jobs, it may finish them
        # at any moment, and they must be answered by `reply` only, never twice.
        finished = [job.done for job in jobs]
        if escalated:
            self.loop.call_soon_threadsafe(self._admit, escalated)
        return finished

    def _first_stage(self, texts: np.ndarray) -> np.ndarray:
        limits = self.stages[0].limits
        if self.first_stage is not None:
            t0 = time.perf_counter()
            out = self.first_stage(texts)
            self._observe(limits.name, time.perf_counter() - t0, len(texts))
            return out
        return asyncio.run_coroutine_threadsafe(self._call_in_chunks(0, texts), self.loop).result()

    async def _call_in_chunks(self, k: int, texts: np.ndarray) -> np.ndarray:
        limits = self.stages[k].limits
        t0 = time.perf_counter()
        chunks = [texts[i : i + limits.max_batch] for i in range(0, len(texts), limits.max_batch)]
        outs = await asyncio.wait_for(
            asyncio.gather(*(self.call_stage(limits.name, ch, limits.timeout_s) for ch in chunks)), limits.timeout_s
        )
        self._observe(limits.name, time.perf_counter() - t0, len(texts))
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outs])

    # ------------------------------------------------------------ executor's thread
    def _admit(self, parts: list[_Part]) -> None:
        now = self.loop.time()
        touched = set()
        for part in parts:
            job = part.job
            if job.done:
                continue
            st = self.stages[part.stage]
            lim = st.limits
            if st.queued_rows + part.rows.size > lim.max_queued_rows:
                self._fail(
                    job,
                    StageFailure(
                        lim.name,
                        FailureKind.OVERLOADED,
                        f"stage '{lim.name}' is overloaded: {st.queued_rows} rows already wait for it "
                        f"(limit stage_queue_rows={lim.max_queued_rows}); retry later",
                    ),
                )
                continue
            part.deadline = min(now + lim.timeout_s, job.deadline)
            part.timer = self.loop.call_at(part.deadline, self._expire, part)
            st.queue.append(part)
            st.queued_rows += part.rows.size
            touched.add(part.stage)
        for k in sorted(touched):
            self._pump(k)

    def _pump(self, k: int) -> None:
        st = self.stages[k]
        while st.inflight < st.limits.max_inflight and st.queue:
            chunk: list[_Part] = []
            room = st.limits.max_batch
            while st.queue and room > 0:
                part = st.queue[0]
                if _cancelled(part.job):
                    self._fail(
                        part.job,
                        StageFailure(
                            st.limits.name,
                            FailureKind.CANCELLED,
                            f"request cancelled by its client before it was sent to stage '{st.limits.name}'",
                        ),
                    )
                    continue  # _fail took the job's parts off the queue
                if part.rows.size > room:  # split: the head goes now, the rest keeps its place
                    head = _Part(part.job, part.rows[:room], k, part.deadline)
                    head.timer = self.loop.call_at(head.deadline, self._expire, head)
                    part.job.parts.add(head)
                    part.rows = part.rows[room:]
                    st.queued_rows -= room
                    chunk.append(head)
                    room = 0
                    continue
                st.queue.popleft()
                st.queued_rows -= part.rows.size
                chunk.append(part)
                room -= part.rows.size
            if chunk:
                self._dispatch(k, chunk)

    def _dispatch(self, k: int, chunk: list[_Part]) -> None:
        st = self.stages[k]
        call = _Call(k, chunk, self.loop.time())
        for part in chunk:
            part.call = call
        st.inflight += 1
        st.calls += 1
        st.live.add(call)
        texts = np.concatenate([p.job.texts[p.rows] for p in chunk])
        timeout = max(p.deadline for p in chunk) - call.started
        task = self.loop.create_task(self._timed_call(st.limits.name, texts, timeout))
        task.add_done_callback(lambda t: self._on_answer(call, t))

    async def _timed_call(self, name: str, texts: np.ndarray, timeout_s: float) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return await self.call_stage(name, texts, max(timeout_s, 1e-3))
        finally:
            self._observe(name, time.perf_counter() - t0, len(texts))

    def _release(self, call: _Call) -> None:
        if not call.released:
            call.released = True
            self.stages[call.stage].inflight -= 1

    def _on_answer(self, call: _Call, task: asyncio.Task) -> None:
        k = call.stage
        st = self.stages[k]
        st.live.discard(call)
        self._release(call)
        live = [p for p in call.parts if not p.job.done]
        for part in call.parts:
            if part.timer is not None:
                part.timer.cancel()
        # Always fetch the outcome, so an abandoned call's error is not reported as "never retrieved".
        exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if live:
            try:
                if exc is not None:
                    raise exc
                logits = _checked(task.result(), sum(p.rows.size for p in call.parts), live[0].job.logits.shape[1])
            except Exception as err:  # noqa: BLE001 - a stage failure fails only its rows' requests
                failure = _failure(st.limits, err)
                for part in live:
                    self._fail(part.job, failure)
            else:
                self._answered(k, call.parts, logits)
        self._pump(k)

    def _answered(self, k: int, parts: list[_Part], logits: np.ndarray) -> None:
        onward: list[_Part] = []
        start = 0
        for part in parts:
            out = logits[start : start + part.rows.size]
            start += part.rows.size
            job = part.job
            if job.done:
                continue
            job.parts.discard(part)
            job.logits[part.rows] = out
            job.route[part.rows] = k
            if k + 1 < len(self.stages):
                lengths = text_lengths(job.texts[part.rows]) if self.policy.uses_lengths else None
                rows = part.rows[self.policy.unsure(out, job.thresholds[k], self.temperature, lengths)]
                if rows.size:
                    nxt = _Part(job, rows, k + 1)
                    job.parts.add(nxt)
                    onward.append(nxt)
            if not job.parts:
                self._finish(job)
        if onward:
            self._admit(onward)

    def _expire(self, part: _Part) -> None:
        job = part.job
        lim = self.stages[part.stage].limits
        where = "waiting for a free call slot" if part.call is None else "waiting for its answer"
        if part.deadline >= job.deadline:
            why = f"the request's own timeout of {job.timeout_s:g} s ran out ({where})"
        else:
            why = f"no answer within stage_timeout_s={lim.timeout_s:g} s ({where}); the stage is slow, hung or busy"
        self._fail(job, StageFailure(lim.name, FailureKind.DEADLINE, f"stage '{lim.name}': {why}"))
        call = part.call
        if call is not None and not call.released and all(p.job.done for p in call.parts):
            self._release(call)  # nobody waits for this call any more: give its slot back
            self.stages[call.stage].abandoned += 1
            self._pump(call.stage)

    def _fail(self, job: Job, failure: StageFailure) -> None:
        if job.done:
            return
        job.failure = failure
        for part in job.parts:
            if part.timer is not None:
                part.timer.cancel()
            if part.call is None:
                st = self.stages[part.stage]
                try:
                    st.queue.remove(part)
                    st.queued_rows -= part.rows.size
                except ValueError:
                    pass
        job.parts.clear()
        self._finish(job)

    def _finish(self, job: Job) -> None:
        job.done = True
        try:
            self.reply(job)
        except Exception:  # noqa: BLE001 - one bad reply must not stop the loop
            log.exception("replying to a request failed")

    def _observe(self, stage: str, seconds: float, rows: int) -> None:
        if self.observer is not None:
            self.observer.stage_call(stage, seconds, rows)

    # -------------------------------------------------------------------- control
    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per stage: rows queued, calls in flight, calls made, calls abandoned past their deadline."""
        return {
            st.limits.name: {
                "queued_rows": st.queued_rows,
                "inflight": st.inflight,
                "calls": st.calls,
                "abandoned": st.abandoned,
            }
            for st in self.stages
        }

    def call_soon(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the loop; requests still waiting are answered with an error first."""

        def shutdown() -> None:
            for st in self.stages:
                for part in list(st.queue) + [p for call in st.live for p in call.parts]:
                    self._fail(
                        part.job,
                        StageFailure(st.limits.name, FailureKind.ERROR, "the router is shutting down (model unloaded)"),
                    )
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.stop()

        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(shutdown)
            self._thread.join(timeout_s)
        if not self._thread.is_alive() and not self.loop.is_closed():
            pending = asyncio.all_tasks(self.loop)
            with contextlib.suppress(Exception):  # let cancelled calls unwind, then free the loop
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()


def _cancelled(job: Job) -> bool:
    try:
        return bool(job.is_cancelled())
    except Exception:  # noqa: BLE001 - if the question cannot be asked, the request still gets its answer
        log.exception("could not ask whether a request was cancelled")
        return False


def _checked(out: Any, rows: int, labels: int | None) -> np.ndarray:
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise StageCallError(f"returned logits of shape {list(arr.shape)} for {rows} rows")
    if labels is not None and arr.shape[1] != labels:
        raise StageCallError(f"returned {arr.shape[1]} labels where the first stage returned {labels}")
    return arr


def _failure(limits: StageLimits, exc: BaseException) -> StageFailure:
    name = limits.name
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return StageFailure(
            name,
            FailureKind.DEADLINE,
            f"stage '{name}' gave no answer within stage_timeout_s={limits.timeout_s:g} s; "
            "the stage is slow, hung or busy",
        )
    if isinstance(exc, StageCallError) and exc.overloaded:
        return StageFailure(name, FailureKind.OVERLOADED, f"stage '{name}' is overloaded ({exc}); retry later")
    return StageFailure(name, FailureKind.ERROR, f"stage '{name}' failed: {exc}")
