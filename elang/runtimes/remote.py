"""Stages on another Triton server: a router's stage named by a gRPC URL (``remote_stages``).

``super=grpc://super-pool:8001/super`` sends the router's calls for stage ``super`` to model
``super`` of the server at ``super-pool:8001`` (``grpcs://`` for TLS). The execution model
calls it like any stage (``CascadeExecutor``'s ``call_stage``): the same deadlines, per-stage
in-flight and queue bounds, chunking to the stage's ``max_batch_size``, cancellation and one
answer per request. Here:

* one asyncio gRPC client (``tritonclient.grpc.aio``) per server, made on the executor's loop
  at the first call and shared by every stage on that server (gRPC multiplexes the calls on
  one connection);
* reconnect backoff capped at ``RECONNECT_BACKOFF_MAX_MS``, so a server that comes back is
  used again within seconds, and calls to a server that is down fail at once
  (``UNAVAILABLE``, naming the stage and its URL) instead of waiting for it;
* TLS from the ``grpcs://`` scheme, with optional root certificates, client key and chain
  (``remote_tls_root_certificates`` / ``_private_key`` / ``_certificate_chain`` paths).

The stage's ``max_batch_size`` and outputs come from its config: the router's repository
copy where it has one, else the remote server's (``fetch_remote_configs``, at load).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c

log = logging.getLogger(__name__)

ENV_REMOTE_STAGES = "ELANG_REMOTE_STAGES"  # overrides the router's remote_stages (the chart sets it)
RECONNECT_BACKOFF_MAX_MS = 2000
TLS_KEYS = ("root_certificates", "private_key", "certificate_chain")
_URL = re.compile(r"^(grpcs?)://([^/\s]+:\d+)(?:/([A-Za-z0-9_.-]+))?/?$")


@dataclass(frozen=True)
class RemoteStage:
    stage: str  # the router's name for it
    url: str  # host:port
    model: str  # the model's name on that server
    tls: bool = False

    @property
    def where(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.url}/{self.model}"


def parse_remote_stages(raw: str | None, stages: Sequence[str] = ()) -> dict[str, RemoteStage]:
    """``stage=grpc://host:port[/model],...`` (the model defaults to the stage's name)."""
    out: dict[str, RemoteStage] = {}
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        m = _URL.match(url)
        if not sep or not name or m is None:
            raise ValueError(f"remote_stages: {item!r} is not STAGE=grpc://HOST:PORT[/MODEL] (or grpcs:// for TLS)")
        if stages and name not in stages:
            raise ValueError(f"remote_stages names {name!r}, which is not a stage of this router ({', '.join(stages)})")
        if name in out:
            raise ValueError(f"remote_stages names {name!r} twice")
        out[name] = RemoteStage(name, m.group(2), m.group(3) or name, m.group(1) == "grpcs")
    return out


def remote_stages_from(params: Mapping[str, str], stages: Sequence[str]) -> dict[str, RemoteStage]:
    """The router's remote stages: ``ELANG_REMOTE_STAGES`` when set, else its ``remote_stages``."""
    raw = os.environ.get(ENV_REMOTE_STAGES)
    return parse_remote_stages(raw if raw is not None else params.get(c.PARAM_REMOTE_STAGES, ""), stages)


def tls_files(params: Mapping[str, str]) -> dict[str, str]:
    """TLS files named by ``remote_tls_*`` parameters (or ``ELANG_REMOTE_TLS_*``): paths, which
    tritonclient reads; each is checked readable now, so a wrong path fails the router's load."""
    out = {}
    for key in TLS_KEYS:
        path = (params.get(f"remote_tls_{key}") or os.environ.get(f"ELANG_REMOTE_TLS_{key.upper()}") or "").strip()
        if path:
            try:
                Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"remote_tls_{key}: cannot read {path}: {exc}") from None
            out[key] = path
    return out


def fetch_remote_configs(
    remotes: Mapping[str, RemoteStage], tls: Mapping[str, str], timeout_s: float = 5.0
) -> dict[str, dict]:
    """Each remote stage's model config (JSON form) from its server, where it answers now."""
    if not remotes:
        return {}
    import tritonclient.grpc as grpcclient

    got = {}
    for name, r in remotes.items():
        try:
            client = grpcclient.InferenceServerClient(r.url, ssl=r.tls, **(tls if r.tls else {}))
            got[name] = client.get_model_config(r.model, as_json=True, client_timeout=timeout_s)["config"]
            client.close()
        except Exception as exc:  # noqa: BLE001 - the router still loads; the stage fails when called
            log.warning("remote stage %s (%s): no config now (%s); using the router's own record", name, r.where, exc)
    return got


def _datatype(a: np.ndarray) -> str:
    if a.dtype == np.object_ or a.dtype.kind in "SU":
        return "BYTES"
    return {"float32": "FP32", "int64": "INT64", "int32": "INT32", "bool": "BOOL", "float16": "FP16"}[str(a.dtype)]


class RemoteCaller:
    """Calls remote stages from the executor's event loop (one client per server)."""

    def __init__(self, remotes: Mapping[str, RemoteStage], tls: Mapping[str, str] | None = None) -> None:
        self.remotes = dict(remotes)
        self.tls = dict(tls or {})
        self._clients: dict[tuple[str, bool], Any] = {}

    def _client(self, r: RemoteStage) -> Any:
        key = (r.url, r.tls)
        if key not in self._clients:
            import tritonclient.grpc.aio as aioclient

            self._clients[key] = aioclient.InferenceServerClient(
                r.url,
                ssl=r.tls,
                **(self.tls if r.tls else {}),
                channel_args=[
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.min_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MAX_MS),
                    ("grpc.max_send_message_length", -1),
                    ("grpc.max_receive_message_length", -1),
                ],
            )
        return self._clients[key]

    async def call(
        self, stage: str, tensors: Mapping[str, np.ndarray], wanted: Sequence[str], timeout_s: float
    ) -> dict[str, np.ndarray]:
        """One call of remote ``stage``: its outputs ``wanted``; errors raise StageCallError naming it."""
        import tritonclient.grpc.aio as aioclient
        from tritonclient.utils import InferenceServerException

        from elang.core.execution import StageCallError

        r = self.remotes[stage]
        inputs = []
        for name, a in tensors.items():
            a = np.ascontiguousarray(a)
            inp = aioclient.InferInput(name, list(a.shape), _datatype(a))
            inp.set_data_from_numpy(a)
            inputs.append(inp)
        outputs = [aioclient.InferRequestedOutput(n) for n in wanted]
        try:
            result = await self._client(r).infer(
                r.model,
                inputs,
                outputs=outputs,
                client_timeout=max(timeout_s, 1e-3),
                timeout=max(1, int(timeout_s * 1e6)),
            )
        except InferenceServerException as exc:
            msg = f"remote stage '{stage}' at {r.where}: {exc.message() or exc}"
            status = str(exc.status() or "")
            raise StageCallError(
                msg,
                overloaded=bool(c.OVERLOAD_ERROR.search(msg)),
                deadline="DEADLINE_EXCEEDED" in status or bool(c.DEADLINE_ERROR.search(msg)),
            ) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise StageCallError(f"remote stage '{stage}' at {r.where}: {exc}") from None
        out = {}
        for n in wanted:
            v = result.as_numpy(n)
            if v is None:
                raise StageCallError(f"remote stage '{stage}' at {r.where} returned no {n}")
            out[n] = v
        return out

    async def close(self) -> None:
        for client in self._clients.values():
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing at shutdown
                log.debug("closing a remote client failed", exc_info=True)
        self._clients.clear()


def describe(remotes: Mapping[str, RemoteStage]) -> str:
    return json.dumps({n: r.where for n, r in remotes.items()})
