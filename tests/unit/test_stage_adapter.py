"""The one stage request loop (``elang.triton.stage_adapter.StageAdapter``) with a stand-in for pb_utils."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from elang import contract as c
from elang.core.texts import InputError
from elang.triton.stage_adapter import StageAdapter


class _Tensor:
    def __init__(self, name: str, arr: np.ndarray) -> None:
        self.name, self.arr = name, arr

    def as_numpy(self) -> np.ndarray:
        return self.arr


class _Error:
    INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

    def __init__(self, message: str, code: str) -> None:
        self.message, self.code = message, code


class _Response:
    def __init__(self, output_tensors: list[_Tensor], error: _Error | None = None) -> None:
        self.tensors = {t.name: t.arr for t in output_tensors}
        self.error = error


class _Logger:
    lines: list[str] = []

    @classmethod
    def log_warn(cls, m: str) -> None:
        cls.lines.append(m)

    log_error = log_info = log_warn


class _Request:
    def __init__(self, texts: list[bytes] | None, params: dict | None = None) -> None:
        self.inputs = {} if texts is None else {c.TEXT: _Tensor(c.TEXT, np.array(texts, dtype=object))}
        self.params = params or {}

    def parameters(self) -> str:
        return json.dumps(self.params)


PB = SimpleNamespace(
    Tensor=_Tensor,
    TritonError=_Error,
    InferenceResponse=_Response,
    Logger=_Logger,
    get_input_tensor_by_name=lambda request, name: request.inputs.get(name),
)


class _Lengths(StageAdapter):
    """A toy stage: LOGITS = [len(text)] per row; fails on the text 'boom'."""

    pb_utils = PB
    kind = "lengths"

    def load(self, folder: Any, params: dict[str, str]) -> None:
        self.folder, self.batches = folder, []

    def compute(self, items: list[Any]) -> list[dict[str, np.ndarray]]:
        self.batches.append(items)
        if any("boom" in texts for texts in items):
            raise RuntimeError("boom")
        return [{c.LOGITS: np.array([[len(t)] for t in texts], dtype=np.float32)} for texts in items]


def _stage(**params: str) -> _Lengths:
    stage = _Lengths()
    config = {"name": "toy", "parameters": {k: {"string_value": v} for k, v in params.items()}}
    stage.initialize({"model_config": json.dumps(config), "model_repository": "/r/toy", "model_version": "1"})
    return stage


def test_one_answer_per_request_and_a_bad_request_alone_is_refused() -> None:
    stage = _stage(max_text_bytes="10")
    reqs = [_Request([b"ab", b"abc"]), _Request([b""]), _Request(None), _Request([b"x" * 11]), _Request([b"abcd"])]
    out = stage.execute(reqs)
    assert len(out) == len(reqs)
    assert out[0].error is None and out[0].tensors[c.LOGITS].ravel().tolist() == [2, 3]
    assert out[4].error is None and out[4].tensors[c.LOGITS].ravel().tolist() == [4]
    for bad in out[1:4]:
        assert bad.error is not None and bad.error.code == "INVALID_ARG"
    assert "10" in out[3].error.message  # the limit is named
    assert stage.batches == [[["ab", "abc"], ["abcd"]]]  # the good requests ran as one batch
    assert str(stage.folder) == "/r/toy/1"


def test_a_failed_batch_answers_every_good_request_with_an_internal_error() -> None:
    out = _stage().execute([_Request([b"fine"]), _Request([b"boom"]), _Request([b""])])
    assert [r.error.code for r in out] == ["INTERNAL", "INTERNAL", "INVALID_ARG"]
    assert "boom" in out[0].error.message


def test_a_hook_that_answers_too_few_requests_is_an_error_not_a_hang() -> None:
    class Short(_Lengths):
        def compute(self, items):  # noqa: ANN001, ANN202
            return []

    stage = Short()
    stage.initialize({"model_config": json.dumps({"name": "s"}), "model_repository": "/r", "model_version": "1"})
    out = stage.execute([_Request([b"a"])])
    assert out[0].error.code == "INTERNAL" and "0 answers for 1" in out[0].error.message


def test_fault_injection_sleeps_only_when_the_config_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("elang.triton.stage_adapter.time.sleep", slept.append)
    _stage().execute([_Request([b"a"], {c.FAULT_SLEEP_PARAM: 2})])
    assert slept == []
    _stage(fault_injection="1").execute([_Request([b"a"], {c.FAULT_SLEEP_PARAM: 2})])
    assert slept == [2.0]


def test_parse_errors_from_a_hook_stay_with_their_request() -> None:
    class Picky(_Lengths):
        def parse(self, request):  # noqa: ANN001, ANN202
            texts = self.texts(request)
            if "no" in texts:
                raise InputError("row 0 says no")
            return texts

    stage = Picky()
    stage.initialize({"model_config": json.dumps({"name": "p"}), "model_repository": "/r", "model_version": "1"})
    out = stage.execute([_Request([b"no"]), _Request([b"yes"])])
    assert out[0].error.message == "row 0 says no" and out[1].tensors[c.LOGITS].ravel().tolist() == [3]
