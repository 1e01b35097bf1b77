"""Triton adapter for `elang`, the public entry point (BLS).

The cascade runs in ``elang.core.execution.CascadeExecutor``: stage 0 (Swift) on every row of the
dynamic batch inside ``execute``, each request answered at once when its rows stay on
Swift; escalated rows go on to later stages over BLS (``async_exec``, with deadlines,
bounded queues and cancellation) and their requests are answered later through the
request's response sender, so ``execute`` returns and takes the next batch meanwhile. The
stages named by ``inline_stage`` run in this process from their copies in the router's
version folder (``elang.runtimes.inline``); those named by ``remote_stages`` (or the
``ELANG_REMOTE_STAGES`` environment variable) are models on other servers, called over
asyncio gRPC (``elang.runtimes.remote``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from elang import contract as c
from elang.calibration.record import router_policy
from elang.core.execution import CascadeExecutor, FailureKind, Job, StageCallError
from elang.core.settings import RouterSettings
from elang.core.texts import InputError
from elang.repository.config import model_config, stage_batch_limits, stages_declare
from elang.repository.fingerprint import stale_message, stale_stages
from elang.runtimes.inline import load_inline_stages
from elang.runtimes.remote import RemoteCaller, describe, fetch_remote_configs, remote_stages_from, tls_files
from elang.triton.common import config_parameters, error_response, request_parameters, request_texts
from elang.triton.metrics import RouterMetrics

_CODES = {
    FailureKind.DEADLINE: "UNAVAILABLE",
    FailureKind.OVERLOADED: "UNAVAILABLE",
    FailureKind.CANCELLED: "CANCELLED",
    FailureKind.ERROR: "INTERNAL",
}


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        self.model_config = json.loads(args["model_config"])
        params = config_parameters(self.model_config)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        repository = Path(args["model_repository"]).parent
        stages = c.parse_stages(params.get(c.PARAM_STAGES))
        self.remotes = remote_stages_from(params, stages)
        tls = tls_files(params) if any(r.tls for r in self.remotes.values()) else {}
        # A remote stage's config: the repository's copy where it has one, else its server's.
        remote_configs = fetch_remote_configs(
            {n: r for n, r in self.remotes.items() if model_config(repository, n) is None}, tls
        )
        params.update(stage_batch_limits(repository, params, remote_configs))
        declared = {o["name"] for o in self.model_config.get("output", [])}
        reports = c.TRUNCATED in declared and stages_declare(repository, stages, c.TRUNCATED, remote_configs)
        params[c.PARAM_REPORT_TRUNCATION] = "1" if reports else "0"
        params[c.PARAM_STAGE_MARGINS] = (
            "1" if stages_declare(repository, stages, c.TOKEN_MARGIN, remote_configs) else "0"
        )
        self.settings = RouterSettings.from_parameters(params)
        both = sorted(set(self.remotes) & set(self.settings.inline_stages))
        if both:
            raise ValueError(f"stage(s) {both} are both remote_stages and inline_stage: choose one")
        self.remote = RemoteCaller(self.remotes, tls)
        self.task = self.settings.spec
        self.logger = pb_utils.Logger
        local = load_inline_stages(version_dir, self.settings)
        stale = stale_stages(Path(args["model_repository"]).parent, self.settings.extra.get(c.PARAM_STAGE_HASHES, ""))
        if stale:
            pb_utils.Logger.log_warn(stale_message(self.model_config["name"], self.settings.calibration_version, stale))
        self.metrics = RouterMetrics(pb_utils, self.model_config["name"], self.settings, stale=stale)
        self.executor = CascadeExecutor(
            self.settings.stage_limits(),
            router_policy(self.settings, Path(args["model_repository"])),
            call_stage=self._call_stage,
            reply=self._reply,
            temperature=self.settings.temperatures,
            local_stages=local,
            observer=self.metrics,
            keep_scores=self.task.keep_scores,
        )
        self.metrics.watch(self.executor)
        note = f" STALE calibration ({', '.join(stale)} changed)" if stale else ""
        note += f" remote={describe(self.remotes)}" if self.remotes else ""
        self.logger.log_info(f"elang router ready: {self.settings.describe()}{note}")

    def finalize(self) -> None:
        if self.remotes:  # close the gRPC channels on the loop that made them, before it stops
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.remote.close(), self.executor.loop).result(2.0)
        self.executor.close()
        self.metrics.close()

    async def _call_stage(self, model: str, inputs: Any, timeout_s: float) -> Any:
        tensors, wanted = self.task.stage_call(self.settings, model, inputs)
        if model in self.remotes:  # a stage on another server (elang.runtimes.remote)
            outs = await self.remote.call(model, tensors, wanted, timeout_s)
            return self.task.stage_answer(self.settings, outs)
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=wanted,
            inputs=[pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in tensors.items()],
            # Triton drops the call from the stage's queue once it waited this long when the stage
            # has a queue policy (stages have none by default); a running execute is not interrupted.
            timeout=max(1, int(timeout_s * 1e6)),
        )
        response = await request.async_exec()
        if response.has_error():
            msg = response.error().message()
            raise StageCallError(
                msg, overloaded=bool(c.OVERLOAD_ERROR.search(msg)), deadline=bool(c.DEADLINE_ERROR.search(msg))
            )
        outs = {n: pb_utils.get_output_tensor_by_name(response, n) for n in wanted}
        missing = [n for n, t in outs.items() if t is None]
        if missing:
            raise StageCallError(f"returned no {', '.join(missing)}")
        return self.task.stage_answer(self.settings, {n: t.as_numpy() for n, t in outs.items()})

    def execute(self, requests: list[Any]) -> list[Any]:
        start = time.perf_counter()
        responses: list[Any] = [None] * len(requests)
        jobs: list[Job] = []
        where: list[int] = []
        for i, request in enumerate(requests):
            try:
                n = len(request_texts(pb_utils, request, self.settings.max_text_bytes))
                params = request_parameters(request)
                thresholds = self.settings.request_thresholds(params)
                inputs = self.task.job_inputs(self.settings, params, n)
            except InputError as exc:
                responses[i] = error_response(pb_utils, str(exc), invalid_arg=True)
                self.metrics.request("invalid")
                continue
            sender = request.get_response_sender()
            raw = pb_utils.get_input_tensor_by_name(request, c.TEXT).as_numpy()
            # Copies: Triton frees the request's tensors when execute returns.
            texts = np.array(raw, dtype=np.object_).reshape(-1, 1)
            timeout_s = request.timeout() / 1e6  # the client's request timeout (microseconds; 0: none)
            jobs.append(Job(texts, thresholds, sender, sender.is_cancelled, timeout_s, inputs))
            where.append(i)
        for i, job, finished in zip(where, jobs, self.executor.run(jobs)):
            if finished:  # answered by stage 0 alone (or stage 0 failed): answer in the returned list
                responses[i] = self._response(job)
        self.metrics.timing(time.perf_counter() - start)
        return responses

    def _response(self, job: Job) -> Any:
        if job.failure is not None:
            f = job.failure
            self.logger.log_error(f.message) if f.kind == FailureKind.ERROR else self.logger.log_warn(f.message)
            self.metrics.failed(job.n, f.stage, f.kind.value)
            code = getattr(pb_utils.TritonError, _CODES[f.kind])
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f.message, code))
        outputs = self.task.outputs(self.settings, job)
        self.metrics.answered(job.route, outputs[c.ENERGY])
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, a) for n, a in outputs.items()])

    def _reply(self, job: Job) -> None:
        """Answer a job that went past stage 0 (called from the executor's thread)."""
        job.context.send(self._response(job), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
