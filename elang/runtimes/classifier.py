"""Text classifier over an ONNX model and a Hugging Face fast tokenizer.

The Swift and Super Triton models are thin adapters around :class:`OnnxTextClassifier`;
the tests and offline tools use it directly. Tokenization pads to the longest text of
the batch (or to ``max_length`` when ``pad_to_max_length`` is set, as the native ONNX
ensemble needs) and truncates at ``max_length`` tokens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from elang import contract as c

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
ONNX_FILE = "model.onnx"
# Tensor names of the tokenizer -> ONNX step (HF convention, also the native ensemble's).
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The tokenizer's per-text flag: cut at max_length (never fed to the model).
TRUNCATED_KEY = "truncated"
# Characters per token of max_length a text keeps before it is tokenized: English averages 4-5
# characters a token, so the first max_length tokens lie far inside the cut, and a text of a MiB
# costs what one of a few KiB does (one request cannot hold a stage for seconds). A text cut here
# is reported truncated.
CHARS_PER_TOKEN = 64


def _pad_token(model_dir: Path, tokenizer) -> tuple[int, str]:  # noqa: ANN001 - tokenizers.Tokenizer
    cfg_path = model_dir / "tokenizer_config.json"
    candidates: list[str] = []
    if cfg_path.is_file():
        pad = json.loads(cfg_path.read_text()).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str):
            candidates.append(pad)
    candidates += ["[PAD]", "<pad>"]
    for tok in candidates:
        tid = tokenizer.token_to_id(tok)
        if tid is not None:
            return tid, tok
    raise ValueError(f"{model_dir / TOKENIZER_FILE}: no pad token found (tried {candidates})")


class TextTokenizer:
    """A fast tokenizer loaded from ``tokenizer.json`` that returns numpy int64 arrays."""

    def __init__(self, model_dir: str | Path, max_length: int, pad_to_max_length: bool = False) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        path = model_dir / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a model folder needs the tokenizer's {TOKENIZER_FILE}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.max_length = int(max_length)
        pad_id, pad_tok = _pad_token(model_dir, self.tokenizer)
        self.tokenizer.enable_truncation(max_length=self.max_length)
        if pad_to_max_length:
            self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_tok, length=self.max_length)
        else:
            self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_tok)

    def lengths(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Each text's token count before truncation (special tokens included)."""
        self.tokenizer.no_truncation()
        try:
            encs = self.tokenizer.encode_batch(texts if pairs is None else list(zip(texts, pairs, strict=True)))
        finally:
            self.tokenizer.enable_truncation(max_length=self.max_length)
        return np.array([sum(e.attention_mask) for e in encs], dtype=np.int64)

    def __call__(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        cap = self.max_length * CHARS_PER_TOKEN
        cut = np.array([len(t) > cap for t in texts], dtype=np.bool_)
        if pairs is not None:
            cut |= np.array([len(p) > cap for p in pairs], dtype=np.bool_)
        if cut.any():
            texts = [t[:cap] for t in texts]
            pairs = None if pairs is None else [p[:cap] for p in pairs]
        encs = self.tokenizer.encode_batch(texts if pairs is None else list(zip(texts, pairs, strict=True)))
        return {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            TRUNCATED_KEY: cut | np.array([bool(e.overflowing) for e in encs], dtype=np.bool_),
        }


def make_session(  # noqa: ANN201
    onnx_path: str | Path,
    intra_op_threads: int = 0,
    providers: list[str] | None = None,
    spinning: bool = False,
    engine: str = "onnxruntime",
    precision: str = "fp32",
    streams: int = 1,
):
    """An onnxruntime InferenceSession with the given thread count and providers (CPU default),
    or, with ``engine="openvino"``, an ``OpenVinoSession`` at ``precision`` (fp32, bf16 or int8) that
    answers the same calls (``elang.runtimes.openvino``), on ``streams`` CPU streams.

    ``spinning=False`` (the default) makes idle intra-op threads sleep instead of busy-waiting:
    models that share CPU cores (Swift and Super in one server) otherwise slow each other down.
    """
    from elang.runtimes.openvino import OpenVinoSession, check_engine

    check_engine(engine, precision, streams)
    if engine == "openvino":
        return OpenVinoSession(onnx_path, precision, intra_op_threads, streams)
    import onnxruntime as ort

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} not found")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(intra_op_threads)
    opts.inter_op_num_threads = 1
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        opts.add_session_config_entry(key, "1" if spinning else "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = ort.get_available_providers()
    wanted = providers or ["CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    if chosen != wanted:
        log.warning("providers %s requested, %s available; using %s", wanted, available, chosen)
    return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=chosen)


def classifier_options(params: dict[str, str]) -> dict:
    """OnnxTextClassifier keyword arguments from a stage's config parameters (strings)."""

    try:
        return {
            "max_length": int(params.get(c.PARAM_MAX_LENGTH, c.DEFAULT_MAX_LENGTH)),
            "intra_op_threads": int(params.get(c.PARAM_INTRA_OP_THREADS, 0)),
            "providers": [p for p in params.get("providers", "").split(",") if p] or None,
            "length_bucket": int(params.get(c.PARAM_LENGTH_BUCKET, 0)),
            "spinning": params.get(c.PARAM_ORT_SPINNING, "0") == "1",
            "engine": params.get(c.PARAM_ENGINE) or "onnxruntime",
            "precision": params.get(c.PARAM_PRECISION) or "fp32",
            "streams": int(params.get(c.PARAM_STREAMS) or 1),
        }
    except ValueError as exc:
        raise ValueError(f"classifier config parameters: {exc}") from None


class OnnxTextClassifier:
    """Texts in, logits out: tokenizer + ONNX Runtime session from one model folder."""

    def __init__(
        self,
        model_dir: str | Path,
        max_length: int = 128,
        intra_op_threads: int = 0,
        providers: list[str] | None = None,
        length_bucket: int = 0,
        spinning: bool = False,
        engine: str = "onnxruntime",
        precision: str = "fp32",
        streams: int = 1,
    ) -> None:
        model_dir = Path(model_dir)
        self.length_bucket = int(length_bucket)
        self.tokenizer = TextTokenizer(model_dir, max_length)
        self.session = make_session(
            model_dir / ONNX_FILE, intra_op_threads, providers, spinning, engine, precision, streams
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        unknown = [n for n in self.input_names if n not in TOKEN_INPUTS]
        if unknown:
            raise ValueError(
                f"{model_dir / ONNX_FILE}: unexpected inputs {unknown}; expected a subset of {TOKEN_INPUTS}"
            )
        last = self.session.get_outputs()[0].shape[-1]
        self.num_labels = last if isinstance(last, int) else None

    def __call__(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        return self.classify(texts, pairs)[0]

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Logits and, per text, whether it was cut at ``max_length`` tokens."""
        if not texts:
            return np.zeros((0, self.num_labels or 0), dtype=np.float32), np.zeros(0, dtype=np.bool_)
        feeds = self.tokenizer(texts, pairs)
        return self._logits(texts, feeds), feeds[TRUNCATED_KEY]

    def _logits(self, texts: list[str], feeds: dict[str, np.ndarray]) -> np.ndarray:
        if not self.length_bucket or len(texts) <= self.length_bucket:
            out = self.session.run(None, {n: feeds[n] for n in self.input_names})[0]
            return np.asarray(out, dtype=np.float32)
        # Length bucketing: sort by token count and run chunks cut to their own longest text,
        # so one long text does not pad the whole batch (padding is on the right).
        lengths = feeds["attention_mask"].sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        logits = None
        for start in range(0, len(order), self.length_bucket):
            idx = order[start : start + self.length_bucket]
            width = int(lengths[idx].max())
            out = self.session.run(None, {n: feeds[n][idx, :width] for n in self.input_names})[0]
            if logits is None:
                logits = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
            logits[idx] = out
        return logits


def logits_in_batches(model: OnnxTextClassifier, texts: list[str], batch: int = 64) -> np.ndarray:
    """Logits for many texts: length-sorted batches (little padding), with a progress bar."""
    from tqdm import tqdm

    order = np.argsort([len(t) for t in texts])
    out = None
    for start in tqdm(range(0, len(texts), batch), desc="onnx", unit="batch", leave=False):
        idx = order[start : start + batch]
        logits = model([texts[i] for i in idx])
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out
