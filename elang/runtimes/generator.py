"""Greedy generation with an exported encoder-decoder (T5 and kin) in ONNX Runtime, and the
per-token energies E-LANG routes on.

The export (``elang.export.generate.stage``) writes optimum's three graphs into a stage folder:
``encoder_model.onnx`` (input_ids, attention_mask -> last_hidden_state), ``decoder_model.onnx``
(the first step: logits and every layer's key/values) and ``decoder_with_past_model.onnx``
(later steps, one token at a time over the KV cache). The encoder runs once per batch; each row
stops at its own EOS or at its own ``max_new_tokens``, and finished rows leave the batch (the
KV cache is cut to the rows still generating), so a short answer stops costing compute.

Each step's token energy is ``-T * logsumexp(logits / T)`` of that step's logits. Outputs
are right-padded: token ids with the pad id, energies with NaN (aggregators skip NaN).
Needs numpy, onnxruntime and tokenizers; no torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.core.routing import logsumexp
from elang.runtimes.classifier import make_session

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
DECODER_PAST_FILE = "decoder_with_past_model.onnx"
ONNX_FILES = (ENCODER_FILE, DECODER_FILE, DECODER_PAST_FILE)
TOKENIZER_FILE = "tokenizer.json"
TARGET_TOKENIZER_DIR = "target_tokenizer"  # our G2P models: phonemes decode with their own tokenizer
SEQ2SEQ_FILE = "seq2seq.json"
DEFAULT_MAX_NEW_TOKENS = 40


def is_seq2seq_folder(folder: Path) -> bool:
    """A stage folder holding an exported encoder-decoder."""
    return all((Path(folder) / f).is_file() for f in ONNX_FILES)


@dataclass
class Generation:
    """What one batch generated, right-padded to the longest row."""

    token_ids: np.ndarray  # [rows, steps] int64, EOS included, pad id after
    energies: np.ndarray  # [rows, steps] float32, NaN after the row's last token
    lengths: np.ndarray  # [rows] int32 tokens generated (EOS included)
    texts: list[str]  # decoded, special tokens skipped
    # [rows, steps] float32: top-1 minus top-2 probability of each chosen token, NaN after the row's
    # last (TOKEN_MARGIN: what the min-margin policy scores; computed when asked)
    margins: np.ndarray | None = None
    step_logits: list[np.ndarray] | None = None  # per row [its steps, vocab] (parity checks only)

    def tensors(self, rows: slice | np.ndarray = slice(None)) -> dict[str, np.ndarray]:
        """A generating stage's output tensors for ``rows``, cut to their longest answer:
        OUTPUT_TEXT (UTF-8 bytes), TOKEN_IDS, TOKEN_ENERGY, NUM_TOKENS and, when computed,
        TOKEN_MARGIN."""

        lengths = self.lengths[rows]
        width = max(1, int(lengths.max(initial=0)))
        texts = np.asarray(self.texts, dtype=np.object_)[rows]
        out = {
            c.OUTPUT_TEXT: np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_).reshape(-1, 1),
            c.TOKEN_IDS: np.ascontiguousarray(self.token_ids[rows, :width]),
            c.TOKEN_ENERGY: np.ascontiguousarray(self.energies[rows, :width]),
            c.NUM_TOKENS: lengths.reshape(-1, 1).astype(np.int32),
        }
        if self.margins is not None:
            out[c.TOKEN_MARGIN] = np.ascontiguousarray(self.margins[rows, :width])
        return out


def token_margins(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 softmax probability over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    top = np.partition(p, -2, axis=-1)[..., -2:] if p.shape[-1] > 1 else np.concatenate([0 * p, p], axis=-1)
    return top[..., 1] - top[..., 0]


def token_energies(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``-T * logsumexp(logits / T)`` over the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    return -temperature * logsumexp(z / temperature, axis=-1)


class OnnxSeq2SeqGenerator:
    """Greedy batched generation from a folder written by ``elang export`` (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_source_tokens: int | None = None,
        temperature: float = 1.0,
        intra_op_threads: int = 0,
        providers: Sequence[str] | None = None,
        io_binding: bool | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        missing = [f for f in (*ONNX_FILES, TOKENIZER_FILE, "config.json") if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not an exported seq2seq stage: {', '.join(missing)} missing")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        cfg = json.loads((folder / "config.json").read_text())
        self.pad_id = int(cfg.get("pad_token_id") or 0)
        self.eos_id = int(cfg.get("eos_token_id") if cfg.get("eos_token_id") is not None else 1)
        start = cfg.get("decoder_start_token_id")
        self.start_id = int(self.pad_id if start is None else start)
        meta = json.loads((folder / SEQ2SEQ_FILE).read_text()) if (folder / SEQ2SEQ_FILE).is_file() else {}
        self.max_source_tokens = int(max_source_tokens or meta.get("max_source_tokens") or 512)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.source = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.source.no_padding()  # a saved tokenizer may carry padding settings; rows are padded here
        self.source.enable_truncation(self.max_source_tokens)
        tdir = folder / TARGET_TOKENIZER_DIR / TOKENIZER_FILE
        self.target = Tokenizer.from_file(str(tdir)) if tdir.is_file() else self.source
        prov = list(providers) if providers else None
        self.encoder = make_session(folder / ENCODER_FILE, intra_op_threads, prov)
        self.decoder = make_session(folder / DECODER_FILE, intra_op_threads, prov)
        self.decoder_past = make_session(folder / DECODER_PAST_FILE, intra_op_threads, prov)
        # IO binding keeps the KV cache on the device between steps (None: on whenever CUDA runs).
        self.device = "cuda" if "CUDAExecutionProvider" in self.decoder_past.get_providers() else "cpu"
        self.io_binding = self.device == "cuda" if io_binding is None else bool(io_binding)
        self._past_inputs = [i.name for i in self.decoder_past.get_inputs() if i.name.startswith("past_key_values.")]
        self._first_outputs = [o.name for o in self.decoder.get_outputs()]
        self._past_outputs = [o.name for o in self.decoder_past.get_outputs()]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask [rows, tokens] (right-padded, EOS appended by the tokenizer)."""
        encs = self.source.encode_batch(list(texts))
        width = max(1, max(len(e.ids) for e in encs))
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return ids, mask

    def decode(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.target.decode([int(i) for i in ids], skip_special_tokens=True)

    def __call__(
        self,
        texts: Sequence[str],
        max_new_tokens: Sequence[int] | int | None = None,
        keep_logits: bool = False,
        margins: bool = False,
    ) -> Generation:
        """Generate for ``texts``; ``max_new_tokens`` per row (or one for all) caps each row, at most the
        stage's cap. ``margins``: also each token's probability margin (``Generation.margins``)."""
        n = len(texts)
        if n == 0:
            raise ValueError("no texts to generate from")
        caps = np.full(n, self.max_new_tokens, dtype=np.int64)
        if max_new_tokens is not None:
            caps = np.minimum(caps, np.broadcast_to(np.asarray(max_new_tokens, dtype=np.int64), (n,)))
        caps = np.maximum(caps, 1)
        ids, mask = self.encode(texts)
        hidden = self._run(self.encoder, {"input_ids": ids, "attention_mask": mask}, ["last_hidden_state"])[
            "last_hidden_state"
        ]
        width = int(caps.max())
        out_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        energies = np.full((n, width), np.nan, dtype=np.float32)
        margin = np.full((n, width), np.nan, dtype=np.float32) if margins else None
        lengths = np.zeros(n, dtype=np.int32)
        kept: list[list[np.ndarray]] | None = [[] for _ in range(n)] if keep_logits else None
        alive = np.arange(n)
        step_in = np.full((n, 1), self.start_id, dtype=np.int64)
        named = self._run(
            self.decoder,
            {"input_ids": step_in, "encoder_attention_mask": mask, "encoder_hidden_states": hidden},
            self._first_outputs,
        )
        past = {k.replace("present.", "past_key_values.", 1): v for k, v in named.items() if k.startswith("present.")}
        logits = named["logits"]
        for t in range(width):
            step = np.asarray(logits[:, -1, :], dtype=np.float32)
            tok = step.argmax(axis=1).astype(np.int64)
            out_ids[alive, t] = tok
            energies[alive, t] = token_energies(step, self.temperature)
            if margin is not None:
                margin[alive, t] = token_margins(step)
            lengths[alive] = t + 1
            if kept is not None:
                for r, row in enumerate(alive):
                    kept[row].append(step[r].copy())
            go = (tok != self.eos_id) & (t + 1 < caps[alive])
            if not go.any():
                break
            if not go.all():  # finished rows leave the batch and its KV cache
                alive, tok, mask = alive[go], tok[go], mask[go]
                past = {k: self._rows(v, go) for k, v in past.items()}
            feed = {"input_ids": tok.reshape(-1, 1), "encoder_attention_mask": mask}
            feed.update({k: past[k] for k in self._past_inputs})
            named = self._run(self.decoder_past, feed, self._past_outputs)
            logits = named["logits"]
            for k, v in named.items():  # the decoder's self-attention cache grows; the encoder's stays
                if k.startswith("present."):
                    past[k.replace("present.", "past_key_values.", 1)] = v
        steps = int(lengths.max())
        texts_out = [self.decode(out_ids[i, : lengths[i]]) for i in range(n)]
        return Generation(
            out_ids[:, :steps],
            energies[:, :steps],
            lengths,
            texts_out,
            None if margin is None else margin[:, :steps],
            None if kept is None else [np.stack(k) for k in kept],
        )

    def _run(self, session, feed: dict, outputs: list[str]) -> dict:  # noqa: ANN001 - an InferenceSession
        """One session run. With IO binding, the logits come to the host (argmax, energies) and
        everything else (encoder states, the KV cache) stays where the session runs, as OrtValues
        fed straight back: on a GPU the cache never crosses the bus."""
        if not self.io_binding:
            return dict(zip(outputs, session.run(outputs, feed)))
        import onnxruntime as ort

        binding = session.io_binding()
        for name, value in feed.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, "cpu" if name == "logits" else self.device)
        session.run_with_iobinding(binding)
        out = dict(zip(outputs, binding.get_outputs()))
        if "logits" in out:
            out["logits"] = out["logits"].numpy()
        return out

    def _rows(self, value, keep: np.ndarray):  # noqa: ANN001, ANN202 - numpy array or OrtValue
        """``value`` cut to the rows still generating (an OrtValue goes back where it was)."""
        if isinstance(value, np.ndarray):
            return value[keep]
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value.numpy()[keep]), self.device, 0)


def generator_options(params: dict[str, str]) -> dict:
    """Constructor options of :class:`OnnxSeq2SeqGenerator` from a stage's config parameters."""

    try:
        return {
            "max_new_tokens": int(params.get(c.PARAM_MAX_NEW_TOKENS, DEFAULT_MAX_NEW_TOKENS)),
            "max_source_tokens": int(params[c.PARAM_MAX_LENGTH]) if params.get(c.PARAM_MAX_LENGTH) else None,
            "temperature": float(params.get(c.PARAM_TEMPERATURE, 1.0)),
            "intra_op_threads": int(params.get(c.PARAM_INTRA_OP_THREADS, 0)),
            "providers": [p for p in params.get("providers", "").split(",") if p] or None,
            "io_binding": {"1": True, "0": False}.get(params.get(c.PARAM_IO_BINDING, "")),
        }
    except ValueError as exc:
        raise ValueError(f"generator config parameters: {exc}") from None
