"""ElangClient: classify texts through an elang-serve Triton server, in batches, concurrently.

Needs numpy and tritonclient only. Calls the `elang` router by default; calling `swift`
or `super` directly gives the same per-text records (energy computed here from the
model's logits, route = that model's stage index), which is how Swift-only and
Super-only baselines are measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from elang import contract as c
from elang.client.admin import ADMIN_KEY_ENV, admin_headers
from elang.client.stats import RoutingStats
from elang.core.routing import energy, get_policy
from elang.core.texts import InputError, decode_texts, encode_texts
from elang.repository.config import json_parameters, parameters

PROTOCOLS = ("grpc", "http")


FAILURE_KINDS = ("overloaded", "deadline", "cancelled", "unreachable", "error", "interrupted")


log = logging.getLogger(__name__)


INTERRUPTED = "interrupted"  # a Prediction's error_kind: never sent, the run was stopped (Ctrl-C)
INTERRUPT_GRACE_S = 5.0  # after Ctrl-C, how long requests in flight may still answer


class ClientError(RuntimeError):
    """The server is unreachable, or a request failed; the message says which and why.

    ``kind`` sorts failures for statistics and retries: ``overloaded`` (a queue was full:
    retry later), ``deadline`` (a stage or this client's timeout ran out), ``cancelled``,
    ``unreachable`` (no server at the address), ``error`` (anything else).
    """

    kind = "error"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class OverloadedError(ClientError):
    """The server refused the request because a queue was full: retry later, or slow down."""

    kind = "overloaded"


_DEADLINE = re.compile(r"stage_timeout_s|deadline exceeded|timed out|timeout", re.IGNORECASE)


def classify_failure(message: str) -> str:
    """The FAILURE_KINDS entry for a server or transport error message."""
    if "stage_timeout_s" in message or "own timeout" in message:  # the router's stage deadlines
        return "deadline"
    if c.OVERLOAD_ERROR.search(message):
        return "overloaded"
    if _DEADLINE.search(message):
        return "deadline"
    if "cancel" in message.lower():
        return "cancelled"
    return "error"


@dataclass
class Prediction:
    """One text's answer, or its error."""

    index: int
    label: int | None = None
    label_name: str | None = None
    logits: np.ndarray | None = None
    energy: float | None = None
    route: int | None = None
    exit: int | None = None  # multi-exit routers: the encoder layer that answered
    score: float | None = None  # multi-exit routers: the exit policy's score there
    output: str | None = None  # generating routers: the generated text
    token_ids: np.ndarray | None = None  # generating routers: the generated ids (EOS included)
    token_energies: np.ndarray | None = None  # generating routers: each token's energy
    truncated: bool | None = None  # the answering stage cut the text at its max length (None: not reported)
    latency_s: float | None = None
    error: str | None = None
    error_kind: str | None = None  # a FAILURE_KINDS entry when error is set

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "label": self.label,
            "label_name": self.label_name,
            "energy": self.energy,
            "route": self.route,
            "truncated": self.truncated,
            "exit": self.exit,
            "score": self.score,
            "latency_ms": None if self.latency_s is None else self.latency_s * 1e3,
            "logits": None if self.logits is None else [float(x) for x in self.logits],
            "output": self.output,
            "token_ids": None if self.token_ids is None else [int(x) for x in self.token_ids],
            "token_energies": None if self.token_energies is None else [float(x) for x in self.token_energies],
            "error": self.error,
            "error_kind": self.error_kind,
        }


@dataclass
class RoutedResult:
    """Answers of one run through a router (or a stage), one Prediction per input, and their stats."""

    predictions: list[Prediction]
    stats: RoutingStats

    @property
    def failed(self) -> list[Prediction]:
        return [p for p in self.predictions if not p.ok]

    @property
    def interrupted(self) -> int:
        """Texts never sent because the run was interrupted (Ctrl-C)."""
        return sum(p.error_kind == INTERRUPTED for p in self.predictions)


@dataclass
class ClassifyResult(RoutedResult):
    """``ElangClient.classify``: labels; ``stats.accuracy`` when true labels were given."""

    @property
    def labels(self) -> list[str | int | None]:
        return [p.label_name if p.label_name is not None else p.label for p in self.predictions]


@dataclass
class GenerateResult(RoutedResult):
    """``ElangClient.generate``: generated texts; ``word_error_rate`` when references were given."""

    @property
    def outputs(self) -> list[str | None]:
        return [p.output for p in self.predictions]

    @property
    def word_error_rate(self) -> float | None:
        """Share of answered inputs whose output matches none of their references."""
        return None if self.stats.accuracy is None else 1.0 - self.stats.accuracy


def _tritonclient(protocol: str):  # noqa: ANN202 - the tritonclient.grpc or .http module
    if protocol == "grpc":
        import tritonclient.grpc as tc
    elif protocol == "http":
        import tritonclient.http as tc
    else:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return tc


class ElangClient:
    """A client for one server. Thread-safe: each thread gets its own tritonclient connection."""

    def __init__(
        self,
        url: str,
        protocol: str = "grpc",
        model: str = c.ROUTER_MODEL,
        timeout_s: float = 60.0,
        admin_key: str | None = None,
    ) -> None:
        self.url = url.removeprefix("http://").removeprefix("grpc://")
        # The control API's secret (load, unload, index), else found as elang.client.admin finds it.
        self._admin_key = admin_key
        self.protocol = protocol
        self.model = model
        self.timeout_s = float(timeout_s)
        self._tc = _tritonclient(protocol)
        self._cascade: tuple[tuple[str, ...], tuple[int, ...]] | None = None
        self._local = threading.local()
        self._labels: list[str] | None = None
        self._outputs: dict[str, set[str]] = {}

    # connection -------------------------------------------------------------------
    def _client(self):  # noqa: ANN202
        cl = getattr(self._local, "client", None)
        if cl is None:
            if self.protocol == "http":
                cl = self._tc.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            else:
                cl = self._tc.InferenceServerClient(self.url)
            self._local.client = cl
        return cl

    def _wrap(self, what: str, fn: Callable):  # noqa: ANN202
        from tritonclient.utils import InferenceServerException

        try:
            return fn()
        except InferenceServerException as exc:
            msg = str(exc.message())
            kind = classify_failure(msg)
            if kind == "overloaded":
                raise OverloadedError(
                    f"{what} at {self.protocol}://{self.url}: server overloaded, retry later ({msg})"
                ) from None
            if "failed to connect" in msg.lower() or "connection refused" in msg.lower():
                kind = "unreachable"
            raise ClientError(f"{what} at {self.protocol}://{self.url} failed: {msg}", kind) from None
        except (ConnectionError, OSError) as exc:
            raise ClientError(f"{what}: cannot reach {self.protocol}://{self.url}: {exc}", "unreachable") from None

    def is_ready(self) -> bool:
        """True when the server and the target model are ready; False when unreachable."""
        try:
            return bool(self._wrap("health check", lambda: self._client().is_model_ready(self.model)))
        except ClientError:
            return False

    def check(self) -> None:
        """Raise a ClientError that says what is wrong unless the target model is ready."""
        live = self._wrap("health check", lambda: self._client().is_server_live())
        if not live:
            raise ClientError(f"server at {self.url} is not live")
        if not self._wrap("health check", lambda: self._client().is_model_ready(self.model)):
            raise ClientError(f"model '{self.model}' is not ready on {self.url}")

    def ready_models(self) -> list[str]:
        """Names of the models the server has loaded and ready."""
        headers = self._admin_headers()
        index = self._wrap("repository index", lambda: self._client().get_model_repository_index(headers=headers))
        if self.protocol == "grpc":
            return sorted(m.name for m in index.models if m.state == "READY")
        return sorted(m["name"] for m in index if m.get("state") == "READY")

    def labels(self) -> list[str] | None:
        """Label names from the model's config parameters (None when it has none)."""
        if self._labels is None:
            raw = self.model_parameters().get(c.PARAM_LABELS)
            self._labels = json.loads(raw) if raw else []
        return self._labels or None

    def max_batch_size(self, model: str | None = None) -> int:
        """The most rows one request to ``model`` may carry (its config's ``max_batch_size``; 0: no batching)."""
        name = model or self.model
        cfg = self._wrap("model config", lambda: self._client().get_model_config(name))
        return int(cfg.config.max_batch_size if self.protocol == "grpc" else cfg.get("max_batch_size", 0))

    def output_names(self, model: str | None = None) -> set[str]:
        """The outputs ``model``'s loaded config declares (cached per model)."""
        name = model or self.model
        if name not in self._outputs:
            cfg = self._wrap("model config", lambda: self._client().get_model_config(name))
            outs = cfg.config.output if self.protocol == "grpc" else cfg.get("output", [])
            self._outputs[name] = {o.name if self.protocol == "grpc" else o["name"] for o in outs}
        return self._outputs[name]

    def model_parameters(self, model: str | None = None) -> dict[str, str]:
        """The ``parameters`` of the config the server has loaded for ``model`` (default: this client's)."""
        name = model or self.model
        cfg = self._wrap("model config", lambda: self._client().get_model_config(name))
        if self.protocol == "grpc":
            return parameters(cfg.config)
        return json_parameters(cfg)

    def router_info(self) -> dict[str, str]:
        """What the running router uses: task, policy, threshold, temperature, calibration version, its
        exit layers and token cap where it has them, and the data its models were trained on."""
        params = self.model_parameters(self.model if c.is_router(self.model) else c.ROUTER_MODEL)
        keys = (
            c.PARAM_POLICY, c.PARAM_THRESHOLD, c.PARAM_TEMPERATURE, c.PARAM_CALIBRATION_VERSION, c.PARAM_TASK,
            c.PARAM_EXIT_LAYERS, c.PARAM_MAX_NEW_TOKENS, c.PARAM_DATA_SPEC,
        )  # fmt: skip
        return {k: params.get(k, "") for k in keys}

    def reload_router(self) -> dict[str, str]:
        """Reload `elang` from the repository (the server must run with model control ``explicit``).

        In-flight requests finish on the old instance; new ones use the new config.
        Returns :meth:`router_info` after the reload.
        """
        headers = self._admin_headers()
        self._wrap(
            "router reload (needs a server with model control 'explicit', as elang serve runs it, and the "
            f"control API's secret: {ADMIN_KEY_ENV} or the file elang serve wrote)",
            lambda: self._client().load_model(
                self.model if c.is_router(self.model) else c.ROUTER_MODEL, headers=headers
            ),
        )
        return self.router_info()

    def _admin_headers(self) -> dict[str, str] | None:
        return admin_headers(self.url, self._admin_key, self.protocol) or None

    def cascade(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(stage names, exit layers) of this client's router; exit layers are () for a pair.
        Asked once per client."""
        if self._cascade is None:
            if not c.is_router(self.model):
                self._cascade = ((self.model,), ())
            else:
                params = self.model_parameters()
                raw = params.get(c.PARAM_EXIT_LAYERS, "").strip()
                layers = tuple(int(x) for x in raw.split(",")) if raw else ()
                self._cascade = (c.parse_stages(params.get(c.PARAM_STAGES)), layers)
        return self._cascade

    # inference --------------------------------------------------------------------
    def infer_batch(self, texts: Sequence[str], threshold: float | str | None = None) -> dict[str, np.ndarray]:
        """One request with ``texts``; returns LABEL, LOGITS, ENERGY, ROUTE arrays (one row per text)."""
        arr = encode_texts(list(texts))
        try:
            decode_texts(arr)
        except InputError as exc:
            raise ClientError(str(exc)) from None
        inp = self._tc.InferInput(c.TEXT, list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        params = {} if threshold is None else {c.THRESHOLD_PARAM: str(threshold)}
        if c.is_router(self.model):
            names = [c.LABEL, c.LOGITS, c.ENERGY, c.ROUTE]
            if self.cascade()[1]:
                names += [c.EXIT, c.SCORE]
        else:
            names = [c.LOGITS]
        if c.TRUNCATED in self.output_names():
            names.append(c.TRUNCATED)
        outputs = [self._tc.InferRequestedOutput(n) for n in names]
        kwargs: dict = {"parameters": params} if params else {}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        result = self._wrap(
            f"inference on model '{self.model}'",
            lambda: self._client().infer(self.model, [inp], outputs=outputs, **kwargs),
        )
        out = {n: result.as_numpy(n) for n in names}
        if not c.is_router(self.model):
            logits = out[c.LOGITS]
            route = c.stage_index(self.model)
            out[c.LABEL] = np.argmax(logits, axis=1).reshape(-1, 1)
            out[c.ENERGY] = energy(logits).astype(np.float32).reshape(-1, 1)
            out[c.ROUTE] = np.full((len(logits), 1), route, dtype=np.int32)
        return out

    def classify(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        concurrency: int = 4,
        threshold: float | str | None = None,
        true_labels: Sequence[str | int] | None = None,
        progress: bool = False,
        raise_on_error: bool = False,
    ) -> ClassifyResult:
        """Classify ``texts`` in batches of ``batch_size`` with ``concurrency`` requests in flight.

        A text the server would refuse (empty, not UTF-8, too large) is not sent: its
        Prediction carries the error. A failed request marks its texts failed with the
        server's message, or raises when ``raise_on_error``. Nothing is dropped.
        """
        if true_labels is not None and len(true_labels) != len(texts):
            raise ValueError(f"{len(true_labels)} labels for {len(texts)} texts")
        labels: list[str] | None = None

        def fill(p: Prediction, out: dict[str, np.ndarray], row: int) -> None:
            p.label = int(out[c.LABEL][row, 0])
            p.label_name = labels[p.label] if labels and p.label < len(labels) else None
            p.logits = out[c.LOGITS][row]
            p.energy = float(out[c.ENERGY][row, 0])
            p.route = int(out[c.ROUTE][row, 0])
            if out.get(c.TRUNCATED) is not None:
                p.truncated = bool(out[c.TRUNCATED][row, 0])
            if c.EXIT in out:
                p.exit = int(out[c.EXIT][row, 0])
                p.score = float(out[c.SCORE][row, 0])

        def first() -> None:
            nonlocal labels
            labels = self.labels()

        preds, wall, sent = self._run(
            texts,
            batch_size,
            concurrency,
            progress,
            raise_on_error,
            "classify",
            lambda batch: self.infer_batch(batch, threshold),
            fill,
            first,
        )
        stages, layers = self.cascade() if sent and c.is_router(self.model) else (c.STAGES, ())
        return ClassifyResult(preds, stats_of(preds, wall, true_labels, labels, stages, layers))

    def _run(
        self,
        texts: Sequence[str],
        batch_size: int,
        concurrency: int,
        progress: bool,
        raise_on_error: bool,
        what: str,
        infer: Callable[[list[str]], dict[str, np.ndarray]],
        fill: Callable[[Prediction, dict[str, np.ndarray], int], None],
        first: Callable[[], None] | None = None,
    ) -> tuple[list[Prediction], float, int]:
        """Send ``texts`` in batches with ``concurrency`` requests in flight: (predictions, wall s, texts sent).

        A text the server would refuse (empty, not UTF-8, too large) is not sent: its
        Prediction carries the error. A failed request marks its texts failed with the
        server's message, or raises when ``raise_on_error``. Nothing is dropped.
        """
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be >= 1")
        preds = [Prediction(i) for i in range(len(texts))]
        sendable = []
        limit = c.DEFAULT_MAX_TEXT_BYTES
        if texts:
            self.check()
            limit = int(self.model_parameters().get(c.PARAM_MAX_TEXT_BYTES) or limit)  # the server's own limit
            most = self.max_batch_size()
            if most > 0 and batch_size > most:  # more rows than one request may carry: split, do not fail
                log.info("batch size %d is over %s's max_batch_size %d: sending %d texts a request",
                         batch_size, self.model, most, most)  # fmt: skip
                batch_size = most
        for i, t in enumerate(texts):
            try:
                decode_texts(encode_texts([t]), limit)
                sendable.append(i)
            except InputError as exc:
                preds[i].error = str(exc).replace("row 0", f"text index {i} (0-based)")
                preds[i].error_kind = "invalid"
        if sendable and first is not None:
            first()
        batches = [sendable[k : k + batch_size] for k in range(0, len(sendable), batch_size)]

        def run(idx: list[int]) -> None:
            t0 = time.perf_counter()
            try:
                out = infer([texts[i] for i in idx])
            except ClientError as exc:
                if raise_on_error:
                    raise
                for i in idx:
                    preds[i].error = str(exc)
                    preds[i].error_kind = exc.kind
                return
            dt = time.perf_counter() - t0
            for row, i in enumerate(idx):
                fill(preds[i], out, row)
                preds[i].latency_s = dt

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(sendable), unit="text", desc=f"{what} via {self.model}")
        start = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=concurrency)
        futures: list = []
        interrupted = False
        try:
            for b in batches:
                futures.append((b, pool.submit(run, b)))
            for idx, fut in futures:
                # Short waits, not one blocking one: a Ctrl-C that the kernel hands to another thread
                # (a gRPC one) is only raised here when this thread runs again.
                while True:
                    try:
                        fut.result(timeout=0.25)
                        break
                    except FutureTimeout:
                        continue
                if bar is not None:
                    bar.update(len(idx))
        except KeyboardInterrupt:
            # Ctrl-C: nothing more is sent; requests in flight get a few seconds to finish, and
            # every text not answered says so. The caller gets what was answered.
            interrupted = True
            pool.shutdown(wait=False, cancel_futures=True)
            grace = time.monotonic() + min(INTERRUPT_GRACE_S, self.timeout_s)
            submitted = {id(b) for b, _ in futures}
            for b, fut in [*futures, *((b, None) for b in batches if id(b) not in submitted)]:
                if fut is not None and not fut.cancelled():
                    with contextlib.suppress(BaseException):
                        fut.result(timeout=max(0.0, grace - time.monotonic()))
                    if fut.done():
                        continue
                    why = "in flight when interrupted (Ctrl-C); its answer was not awaited"
                else:
                    why = "not sent: interrupted (Ctrl-C)"
                for i in b:
                    preds[i].error, preds[i].error_kind = why, INTERRUPTED
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        wall = time.perf_counter() - start
        if bar is not None:
            bar.close()
        return preds, wall, len(sendable)

    # generation -------------------------------------------------------------------
    def generate_batch(
        self, texts: Sequence[str], threshold: float | str | None = None, max_new_tokens: int | None = None
    ) -> dict[str, np.ndarray]:
        """One request to a generating router (or stage): OUTPUT_TEXT, TOKEN_IDS, TOKEN_ENERGY,
        NUM_TOKENS, ENERGY and ROUTE, one row per text. A stage called directly gets ENERGY as the
        mean of its token energies and ROUTE its stage index."""
        arr = encode_texts(list(texts))
        try:
            decode_texts(arr)
        except InputError as exc:
            raise ClientError(str(exc)) from None
        inp = self._tc.InferInput(c.TEXT, list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        inputs = [inp]
        params: dict = {}
        if threshold is not None:
            params[c.THRESHOLD_PARAM] = str(threshold)
        router = c.is_router(self.model)
        if max_new_tokens is not None:
            if router:
                params[c.MAX_NEW_TOKENS_PARAM] = int(max_new_tokens)
            else:
                cap = self._tc.InferInput(c.MAX_NEW_TOKENS, [len(texts), 1], "INT32")
                cap.set_data_from_numpy(np.full((len(texts), 1), int(max_new_tokens), dtype=np.int32))
                inputs.append(cap)
        # A stage called directly: not TOKEN_MARGIN (what only a router's policy needs, and what the
        # stage then does not compute; stages exported before it do not declare it)
        specs = c.generate_router_outputs() if router else c.generator_outputs()
        names = [t.name for t in specs if t.name != c.TOKEN_MARGIN]
        outputs = [self._tc.InferRequestedOutput(n) for n in names]
        kwargs: dict = {"parameters": params} if params else {}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        result = self._wrap(
            f"generation on model '{self.model}'",
            lambda: self._client().infer(self.model, inputs, outputs=outputs, **kwargs),
        )
        out = {n: result.as_numpy(n) for n in names}
        if not router:
            e = out[c.TOKEN_ENERGY]
            out[c.ENERGY] = get_policy("mean").score(e).astype(np.float32).reshape(-1, 1)
            out[c.ROUTE] = np.full((len(e), 1), c.stage_index(self.model), dtype=np.int32)
        return out

    def generate(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        concurrency: int = 4,
        threshold: float | str | None = None,
        max_new_tokens: int | None = None,
        references: Sequence[Sequence[str]] | None = None,
        progress: bool = False,
        raise_on_error: bool = False,
    ) -> GenerateResult:
        """Generate for ``texts`` through a generating router (or stage), in batches, concurrently.

        Each Prediction holds ``output`` (the text), ``token_ids``, ``token_energies``, ``energy``
        (the routed aggregate) and ``route``. With ``references`` (per text, every correct output),
        ``stats.accuracy`` is the share of outputs that match one (1 - word error rate).
        """
        if references is not None and len(references) != len(texts):
            raise ValueError(f"{len(references)} references for {len(texts)} texts")

        def fill(p: Prediction, out: dict[str, np.ndarray], row: int) -> None:
            n = int(out[c.NUM_TOKENS][row, 0])
            raw = out[c.OUTPUT_TEXT][row, 0]
            p.output = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            p.token_ids = out[c.TOKEN_IDS][row, :n]
            p.token_energies = out[c.TOKEN_ENERGY][row, :n]
            p.energy = float(out[c.ENERGY][row, 0])
            p.route = int(out[c.ROUTE][row, 0])

        preds, wall, sent = self._run(
            texts,
            batch_size,
            concurrency,
            progress,
            raise_on_error,
            "generate",
            lambda batch: self.generate_batch(batch, threshold, max_new_tokens),
            fill,
        )
        stages = self.cascade()[0] if sent and c.is_router(self.model) else c.STAGES
        correct = None
        if references is not None:
            correct = [p.output.split() in [r.split() for r in references[p.index]] for p in preds if p.ok]
        ok = [p for p in preds if p.ok]
        stats = RoutingStats.compute(
            routes=[p.route for p in ok],
            energies=[p.energy for p in ok],
            latencies_s=[p.latency_s for p in ok],
            wall_s=wall,
            correct=correct,
            failed=len(preds) - len(ok),
            failures_by_kind=dict(Counter(p.error_kind or "error" for p in preds if not p.ok)),
            stage_names=tuple(stages),
        )
        return GenerateResult(preds, stats)


def stats_of(
    preds: Sequence[Prediction],
    wall_s: float,
    true_labels: Sequence[str | int] | None = None,
    label_names: Sequence[str] | None = None,
    stage_names: tuple[str, ...] = c.STAGES,
    exit_layers: tuple[int, ...] = (),
) -> RoutingStats:
    """RoutingStats of predictions; ``true_labels`` may be label names or ids."""
    ok = [p for p in preds if p.ok]
    correct = None
    if true_labels is not None:
        correct = [_matches(p, true_labels[p.index], label_names) for p in ok]
    return RoutingStats.compute(
        routes=[p.route for p in ok],
        energies=[p.energy for p in ok],
        latencies_s=[p.latency_s for p in ok],
        wall_s=wall_s,
        correct=correct,
        failed=len(preds) - len(ok),
        failures_by_kind=dict(Counter(p.error_kind or "error" for p in preds if not p.ok)),
        stage_names=tuple(stage_names),
        exit_layers=tuple(exit_layers),
        truncated=None if all(p.truncated is None for p in ok) else sum(bool(p.truncated) for p in ok),
    )


def _matches(p: Prediction, truth: str | int, label_names: Sequence[str] | None) -> bool:
    if p.label_name is not None and str(truth) == p.label_name:
        return True
    return str(truth) == str(p.label)
