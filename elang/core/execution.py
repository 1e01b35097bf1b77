"""The router's execution model: how a cascade calls its stages, with deadlines, bounded
queues, cancellation and per-stage batch limits.

Triton-free (numpy, asyncio, threading): the `elang` Triton adapter builds one
:class:`CascadeExecutor` per router instance and calls :meth:`CascadeExecutor.run` from
``execute``; the unit tests drive it with plain functions. Any cascade (two stages or more,
classifiers now, generating stages later) runs through it.

* **Where a stage runs.** A stage is called by name through ``call_stage`` (a BLS call in
  Triton, a gRPC call to another server), or, when ``local_stages`` holds it, in this process
  (an inline stage: stage 0 in the caller's thread, a later stage on a worker thread). Every
  rule below holds the same for both.
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
import concurrent.futures
import contextlib
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from elang.contract import TEXT
from elang.core.routing import Policy, text_lengths

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
    """A stage call failed; ``overloaded`` when the stage refused it for a full queue, ``deadline``
    when it waited out its timeout in the stage's queue (a slow or hung stage)."""

    def __init__(self, message: str, overloaded: bool = False, deadline: bool = False) -> None:
        super().__init__(message)
        self.overloaded = overloaded
        self.deadline = deadline


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


@dataclass(frozen=True)
class StageOutput:
    """What a stage returns: what the policy scores (``logits``), optionally per-row state for the
    next stage (``carry``) and per-row results to answer with (``outputs``).

    A segment of a multi-exit encoder returns its exit's logits and the hidden state
    (``{"HIDDEN": [rows, L, H], "MASK": [rows, L]}``); the next stage is called with the carry
    of the escalated rows instead of their texts. A generating stage returns its token
    energies and margins as ``logits`` ([rows, steps, 2], NaN-padded to the router's cap:
    ``elang.core.routing.token_channels``) and its text and
    token ids as ``outputs``; the answering stage's outputs are the request's answer. Arrays
    of two or more dimensions are padded with zeros along axis 1 when rows of several requests
    go out in one call.
    """

    logits: np.ndarray
    carry: dict[str, np.ndarray] | None = None
    outputs: dict[str, np.ndarray] | None = None


StageInputs = np.ndarray | dict[str, np.ndarray]
StageCall = Callable[[str, StageInputs, float], Awaitable[np.ndarray | StageOutput]]
"""``await call(stage_name, inputs, timeout_s)`` -> logits [rows, labels] or a :class:`StageOutput`.

``inputs`` are the rows' texts [rows, 1] (with the job's per-row ``inputs`` as well: a dict
``{"TEXT": texts, name: values, ...}``), or the carry the previous stage returned for them."""


class Job:
    """One client request moving through the cascade.

    ``thresholds[k]`` decides escalation from stage k to k+1. After the job is done,
    ``failure`` is None and ``logits``/``route``/``first_logits``/``scores`` hold the answer
    (``scores``: the policy's score at the stage that answered), or ``failure`` says which
    stage failed and why.
    """

    def __init__(
        self,
        texts: np.ndarray,
        thresholds: Sequence[float],
        context: Any = None,
        is_cancelled: Callable[[], bool] | None = None,
        timeout_s: float = 0.0,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.texts = np.asarray(texts, dtype=np.object_).reshape(-1, 1)
        self.n = len(self.texts)
        # Per-row inputs sent with the texts to every stage that reads texts (e.g. MAX_NEW_TOKENS).
        self.inputs = {k: np.asarray(v) for k, v in (inputs or {}).items()}
        for name, v in self.inputs.items():
            if len(v) != self.n:
                raise ValueError(f"input {name} has {len(v)} rows for {self.n} texts")
        self.outputs: dict[str, np.ndarray] | None = None  # the answering stage's per-row outputs
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.context = context
        self.is_cancelled = is_cancelled or (lambda: False)
        # The request's own timeout (Triton's request timeout, 0: none) bounds every stage's wait.
        self.timeout_s = float(timeout_s)
        self.deadline = time.monotonic() + self.timeout_s if self.timeout_s > 0 else float("inf")
        self.logits: np.ndarray | None = None
        self.first_logits: np.ndarray | None = None
        self.route = np.zeros(self.n, dtype=np.int32)
        self.scores = np.full(self.n, np.nan)
        self.state: np.ndarray | None = None  # the policy's per-row state (patience)
        self.carry: dict[str, np.ndarray] | None = None  # per-row state a stage passed on (hidden states)
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

    ``call_stage`` calls a stage by name (a BLS call in Triton); ``local_stages`` maps the
    names of stages run in this process to callables from their inputs to their answers
    (stage 0 runs in the caller's thread, a later one on a worker thread, under the same
    deadlines, bounds and chunking). ``reply(job)`` is called once per job that :meth:`run`
    did not report as finished, from the executor's thread.
    """

    def __init__(
        self,
        stages: Sequence[StageLimits],
        policy: Policy,
        call_stage: StageCall,
        reply: Callable[[Job], None],
        temperature: float | Sequence[float] = 1.0,
        local_stages: Mapping[str, Callable[[Any], np.ndarray | StageOutput]] | None = None,
        observer: StageObserver | None = None,
        keep_scores: bool = True,
    ) -> None:
        if len(stages) < 1:
            raise ValueError("a cascade needs at least one stage")
        self.stages = [_StageState(s) for s in stages]
        self.policy = policy
        temps = [float(temperature)] * len(stages) if np.ndim(temperature) == 0 else [float(t) for t in temperature]
        if len(temps) != len(stages):
            raise ValueError(f"{len(temps)} temperatures for {len(stages)} stages: give one, or one per stage")
        self.temperatures = temps
        # Score rows at the stage that answers them (a multi-exit router's SCORE); a pair's
        # router never outputs it, and skips the last stage's scoring.
        self.keep_scores = keep_scores
        self.call_stage = call_stage
        self.reply = reply
        local = dict(local_stages or {})
        unknown = sorted(set(local) - {s.limits.name for s in self.stages})
        if unknown:
            raise ValueError(f"local stages {unknown} are not stages of this cascade")
        self.local_stages = local
        self.first_stage = local.get(self.stages[0].limits.name)
        # Later local stages run here: one thread per call slot, so a hung call holds only its own.
        later = [s.limits.max_inflight for s in self.stages[1:] if s.limits.name in local]
        self._workers = (
            concurrent.futures.ThreadPoolExecutor(max_workers=sum(later), thread_name_prefix="elang-local")
            if later
            else None
        )
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
            out = _checked(self._first_stage(_text_inputs(jobs, [np.arange(j.n) for j in jobs])), len(texts), None)
        except Exception as exc:  # noqa: BLE001 - stage 0 failing fails this batch, not the router
            failure = _failure(first, exc)
            for job in jobs:
                job.failure, job.done = failure, True
            return [True] * len(jobs)
        escalated: list[_Part] = []
        start = 0
        for job in jobs:
            job.first_logits = out.logits[start : start + job.n]
            job.logits = job.first_logits.copy()
            if out.carry is not None:
                job.carry = {k: v[start : start + job.n] for k, v in out.carry.items()}
            if out.outputs is not None:
                job.outputs = {k: v[start : start + job.n] for k, v in out.outputs.items()}
            start += job.n
            job.state = self.policy.initial_state(job.n)
            try:
                rows = self._step(job, np.arange(job.n), job.logits, 0)
            except Exception as exc:  # noqa: BLE001 - a policy that cannot score these rows fails their request
                job.failure, job.done = StageFailure(first.name, FailureKind.ERROR, f"routing failed: {exc}"), True
                continue
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

    def _step(self, job: Job, rows: np.ndarray, logits: np.ndarray, k: int) -> np.ndarray:
        """The policy after stage ``k`` on ``rows`` of ``job``: records their scores and state, and
        returns the rows to send on (none after the last stage)."""
        last = k + 1 >= len(self.stages)
        if last and not self.keep_scores:
            return rows[:0]
        lengths = text_lengths(job.texts[rows]) if self.policy.uses_lengths else None
        state = None if job.state is None else job.state[rows]
        try:
            unsure, scores, state = self.policy.decide(
                logits, np.nan if last else job.thresholds[k], self.temperatures[k], lengths, state
            )
        except Exception:
            if last:  # the answer stands; only its score is unknown
                job.scores[rows] = np.nan
                return rows[:0]
            raise
        job.scores[rows] = scores
        if state is not None:
            job.state[rows] = state
        return rows[:0] if last else rows[unsure]

    def _first_stage(self, inputs: StageInputs) -> np.ndarray | StageOutput:
        limits = self.stages[0].limits
        rows = _rows(inputs)
        if self.first_stage is not None:
            t0 = time.perf_counter()
            out = self.first_stage(inputs)
            self._observe(limits.name, time.perf_counter() - t0, rows)
            return out
        return asyncio.run_coroutine_threadsafe(self._call_in_chunks(0, inputs), self.loop).result()

    async def _call_in_chunks(self, k: int, inputs: StageInputs) -> StageOutput:
        limits = self.stages[k].limits
        t0 = time.perf_counter()
        n, step = _rows(inputs), limits.max_batch
        chunks = [_slice(inputs, slice(i, i + step)) for i in range(0, n, step)]
        outs = await asyncio.wait_for(
            asyncio.gather(*(self.call_stage(limits.name, ch, limits.timeout_s) for ch in chunks)), limits.timeout_s
        )
        self._observe(limits.name, time.perf_counter() - t0, n)
        parts = [_checked(o, _rows(ch), None) for o, ch in zip(outs, chunks, strict=True)]
        carry = None if parts[0].carry is None else concat_carry([p.carry for p in parts])
        outputs = None if parts[0].outputs is None else concat_carry([p.outputs for p in parts])
        return StageOutput(np.concatenate([p.logits for p in parts]), carry, outputs)

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
        inputs = _stage_inputs(chunk)
        timeout = max(p.deadline for p in chunk) - call.started
        task = self.loop.create_task(self._timed_call(st.limits.name, inputs, timeout))
        task.add_done_callback(lambda t: self._on_answer(call, t))

    async def _timed_call(self, name: str, inputs: StageInputs, timeout_s: float) -> np.ndarray | StageOutput:
        t0 = time.perf_counter()
        rows = _rows(inputs)
        try:
            local = self.local_stages.get(name)
            if local is not None:
                return await self.loop.run_in_executor(self._workers, local, inputs)
            return await self.call_stage(name, inputs, max(timeout_s, 1e-3))
        finally:
            self._observe(name, time.perf_counter() - t0, rows)

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
                out = _checked(task.result(), sum(p.rows.size for p in call.parts), live[0].job.logits.shape[1])
            except Exception as err:  # noqa: BLE001 - a stage failure fails only its rows' requests
                failure = _failure(st.limits, err)
                for part in live:
                    self._fail(part.job, failure)
            else:
                self._answered(k, call.parts, out)
        self._pump(k)

    def _answered(self, k: int, parts: list[_Part], answer: StageOutput) -> None:
        onward: list[_Part] = []
        start = 0
        for part in parts:
            sl = slice(start, start + part.rows.size)
            start += part.rows.size
            job = part.job
            if job.done:
                continue
            job.parts.discard(part)
            out = answer.logits[sl]
            job.logits[part.rows] = out
            job.route[part.rows] = k
            if answer.carry is not None:
                if job.carry is None:
                    job.carry = {n: _empty_rows(v, job.n) for n, v in answer.carry.items()}
                for n, v in answer.carry.items():
                    _put_rows(job.carry, n, part.rows, v[sl])
            if answer.outputs is not None:
                if job.outputs is None:
                    job.outputs = {n: _empty_rows(v, job.n) for n, v in answer.outputs.items()}
                for n, v in answer.outputs.items():
                    _put_rows(job.outputs, n, part.rows, v[sl])
            try:
                rows = self._step(job, part.rows, out, k)
            except Exception as exc:  # noqa: BLE001 - a policy that cannot score these rows fails their request
                self._fail(job, StageFailure(self.stages[k].limits.name, FailureKind.ERROR, f"routing failed: {exc}"))
                continue
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
        if self._workers is not None:  # a local call still running finishes on its own
            self._workers.shutdown(wait=False, cancel_futures=True)


def _cancelled(job: Job) -> bool:
    try:
        return bool(job.is_cancelled())
    except Exception:  # noqa: BLE001 - if the question cannot be asked, the request still gets its answer
        log.exception("could not ask whether a request was cancelled")
        return False


def _checked(out: Any, rows: int, labels: int | None) -> StageOutput:
    carry = out.carry if isinstance(out, StageOutput) else None
    outputs = out.outputs if isinstance(out, StageOutput) else None
    arr = np.asarray(out.logits if isinstance(out, StageOutput) else out, dtype=np.float32)
    if arr.ndim not in (2, 3) or arr.shape[0] != rows:  # 3: a generating stage's [rows, steps, 2]
        raise StageCallError(f"returned logits of shape {list(arr.shape)} for {rows} rows")
    if labels is not None and arr.shape[1] != labels:
        raise StageCallError(f"returned {arr.shape[1]} labels where the first stage returned {labels}")
    for name, v in {**(carry or {}), **(outputs or {})}.items():
        if np.ndim(v) < 1 or len(v) != rows:
            raise StageCallError(f"returned {name} of shape {list(np.shape(v))} for {rows} rows")
    return StageOutput(arr, carry, outputs)


def concat_carry(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several carries in one: arrays of 2+ dimensions are zero-padded along axis 1."""
    out = {}
    for name in parts[0]:
        arrs = [np.asarray(p[name]) for p in parts]
        if arrs[0].ndim >= 2:
            width = max(a.shape[1] for a in arrs)
            arrs = [_fit_width(a, width) for a in arrs]
        out[name] = np.concatenate(arrs)
    return out


def _fit_width(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] == width:
        return a
    if a.shape[1] > width:  # columns beyond a request's own width are padding for it
        return a[:, :width]
    return np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2))


def _empty_rows(like: np.ndarray, n: int) -> np.ndarray:
    return np.zeros((n, *np.shape(like)[1:]), dtype=np.asarray(like).dtype)


def _put_rows(carry: dict[str, np.ndarray], name: str, rows: np.ndarray, value: np.ndarray) -> None:
    dst = carry[name]
    value = np.asarray(value)
    if dst.ndim >= 2 and value.ndim >= 2 and dst.shape[1] != value.shape[1]:
        value = _fit_width(value, dst.shape[1])
    carry[name][rows] = value


def _stage_inputs(chunk: Sequence[_Part]) -> StageInputs:
    """What one call to a stage gets: the rows' texts (and per-row inputs), or the carry their
    previous stage returned."""
    if chunk[0].job.carry is None:
        return _text_inputs([p.job for p in chunk], [p.rows for p in chunk])
    return concat_carry([{n: v[p.rows] for n, v in p.job.carry.items()} for p in chunk])


def _text_inputs(jobs: Sequence[Job], rows: Sequence[np.ndarray]) -> StageInputs:
    """The texts of ``rows`` of each job, as one array, or a dict with the jobs' per-row inputs."""
    texts = np.concatenate([j.texts[r] for j, r in zip(jobs, rows)])
    if not jobs[0].inputs:
        return texts
    extra = {n: np.concatenate([j.inputs[n][r] for j, r in zip(jobs, rows)]) for n in jobs[0].inputs}
    return {TEXT: texts, **extra}


def _rows(inputs: StageInputs) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def _slice(inputs: StageInputs, sl: slice) -> StageInputs:
    return {k: v[sl] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[sl]


def _failure(limits: StageLimits, exc: BaseException) -> StageFailure:
    name = limits.name
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return StageFailure(
            name,
            FailureKind.DEADLINE,
            f"stage '{name}' gave no answer within stage_timeout_s={limits.timeout_s:g} s; "
            "the stage is slow, hung or busy",
        )
    if isinstance(exc, StageCallError) and exc.deadline:
        return StageFailure(
            name,
            FailureKind.DEADLINE,
            f"stage '{name}' did not take the call in time ({exc}); it is slow, hung or busy",
        )
    if isinstance(exc, StageCallError) and exc.overloaded:
        return StageFailure(name, FailureKind.OVERLOADED, f"stage '{name}' is overloaded ({exc}); retry later")
    return StageFailure(name, FailureKind.ERROR, f"stage '{name}' failed: {exc}")
