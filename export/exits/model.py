"""Multi-exit encoders: a classifier exit after chosen layers of one encoder.

The model of "The Right Tool for the Job" (Schwartz et al. 2020), DeeBERT and PABEE: every
exit reads the first token's hidden state after its layer. ``elang train --exits 2,4,6``
trains the exits jointly; ``elang slenderize`` prunes the encoder's width (COST-EFF); the
export cuts the encoder into segments at the exits (``export.segments``).

A multi-exit checkpoint is an ordinary Hugging Face encoder folder (``config.json``, weights,
tokenizer, ``labels.json``; heads removed by pruning are in ``config.pruned_heads``, a
narrower FFN in ``config.intermediate_size``) plus:

* ``exits.json``: ``{"format": 1, "layers": [...], "temperatures": [...], "num_labels": C}``;
* ``exits.safetensors``: the exit heads' weights.

One forward path serves training, evaluation and export: :meth:`MultiExitModel.embed`, then
:meth:`MultiExitModel.run_layers` between exits, then :class:`ExitHead`. BERT-family encoders
(BERT, MiniLM, RoBERTa) and MPNet are supported.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

EXITS_FILE = "exits.json"
HEADS_FILE = "exits.safetensors"
FORMAT = 1


class MultiExitError(ValueError):
    """A checkpoint or an exit list that cannot make a multi-exit model."""


def is_multi_exit(folder: str | Path) -> bool:
    return (Path(folder) / EXITS_FILE).is_file()


def read_exits(folder: str | Path) -> dict:
    """The ``exits.json`` of a multi-exit checkpoint, checked."""
    path = Path(folder) / EXITS_FILE
    if not path.is_file():
        raise MultiExitError(
            f"{folder} is not a multi-exit checkpoint (no {EXITS_FILE}; train one with elang train --exits)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MultiExitError(f"{path}: not a readable multi-exit description ({exc})") from None
    if meta.get("format") != FORMAT:
        raise MultiExitError(f"{path}: format {meta.get('format')!r}, this version reads format {FORMAT}")
    layers, temps = meta.get("layers"), meta.get("temperatures")
    if not isinstance(layers, list) or not layers or not isinstance(temps, list) or len(temps) != len(layers):
        raise MultiExitError(f"{path}: needs 'layers' and one temperature per layer, got {layers!r} / {temps!r}")
    return meta


def parse_exits(value: str | list[int] | tuple[int, ...], num_layers: int | None = None) -> tuple[int, ...]:
    """Exit layers from "2,4,6" (1-based layer numbers, increasing; the last may be the top layer)."""
    try:
        items = [int(x) for x in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise MultiExitError(f"exits must be comma-separated layer numbers like 2,4,6, got {value!r}") from None
    if not items:
        raise MultiExitError("give at least one exit layer")
    if any(b <= a for a, b in zip(items, items[1:], strict=False)) or items[0] < 1:
        raise MultiExitError(f"exit layers must be increasing numbers >= 1, got {items}")
    if num_layers is not None and items[-1] > num_layers:
        raise MultiExitError(f"exit layer {items[-1]} is beyond the encoder's {num_layers} layers")
    return tuple(items)


class ExitHead(nn.Module):
    """First token -> dense -> tanh -> labels: the classification head of RoBERTa and MPNet."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(hidden_states[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


def kept_heads(config) -> list[list[int]]:  # noqa: ANN001 - a transformers PretrainedConfig
    """Per layer, the attention heads that pruning kept (from ``config.pruned_heads``)."""
    pruned = {int(k): set(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}
    n = config.num_attention_heads
    return [[h for h in range(n) if h not in pruned.get(i, set())] for i in range(config.num_hidden_layers)]


class MultiExitModel(nn.Module):
    """An encoder with an :class:`ExitHead` after each layer in ``layers`` (1-based)."""

    def __init__(self, encoder: nn.Module, layers: tuple[int, ...], num_labels: int) -> None:
        super().__init__()
        cfg = encoder.config
        if cfg.model_type not in ("bert", "roberta", "mpnet", "xlm-roberta", "electra"):
            raise MultiExitError(f"multi-exit models support BERT-family and MPNet encoders, not {cfg.model_type!r}")
        self.layers = parse_exits(layers, cfg.num_hidden_layers)
        self.encoder = encoder
        self.heads = nn.ModuleList(ExitHead(cfg.hidden_size, num_labels, cfg.hidden_dropout_prob) for _ in self.layers)
        self.num_labels = num_labels
        self.temperatures = [1.0] * len(self.layers)
        self._heads_kept = kept_heads(cfg)

    # ----------------------------------------------------------------- building
    @classmethod
    def from_base(cls, base_dir: Path, layers: tuple[int, ...], num_labels: int, keep_layers: int | None = None):  # noqa: ANN206
        """Exits on a pretrained or fine-tuned encoder; the top exit starts from its classifier when it has one."""
        from transformers import AutoModel

        kwargs = {"attn_implementation": "eager"}
        if keep_layers:
            kwargs["num_hidden_layers"] = keep_layers
        encoder = AutoModel.from_pretrained(base_dir, add_pooling_layer=False, **kwargs)
        model = cls(encoder, layers, num_labels)
        if is_multi_exit(base_dir) and tuple(read_exits(base_dir)["layers"]) == model.layers:
            from safetensors.torch import load_file

            model.heads.load_state_dict(load_file(Path(base_dir) / HEADS_FILE))  # e.g. a pruned model's own exits
        else:
            _init_top_head(model, Path(base_dir))
        return model

    @classmethod
    def load(cls, folder: str | Path):  # noqa: ANN206
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        meta = read_exits(folder)
        encoder = AutoModel.from_pretrained(folder, add_pooling_layer=False, attn_implementation="eager")
        model = cls(encoder, tuple(meta["layers"]), int(meta["num_labels"]))
        model.heads.load_state_dict(load_file(folder / HEADS_FILE))
        model.temperatures = [float(t) for t in meta["temperatures"]]
        model.eval()
        return model

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        self.encoder.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.heads.state_dict().items()}, folder / HEADS_FILE)
        meta = {
            "format": FORMAT,
            "layers": list(self.layers),
            "temperatures": list(self.temperatures),
            "num_labels": self.num_labels,
            "num_hidden_layers": self.encoder.config.num_hidden_layers,
            **(extra or {}),
        }
        (folder / EXITS_FILE).write_text(json.dumps(meta, indent=2))

    # ------------------------------------------------------------------ forward
    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is not None and self.encoder.config.model_type != "mpnet":
            return self.encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        return self.encoder.embeddings(input_ids=input_ids)

    def run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Encoder layers ``start+1 .. end`` (1-based) on ``hidden`` [B, L, H] under ``mask`` [B, L]."""
        ext = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        enc = self.encoder.encoder
        bias = enc.compute_position_bias(hidden) if hasattr(enc, "compute_position_bias") else None
        for i in range(start, end):
            kwargs = {}
            if bias is not None:
                kept = self._heads_kept[i]
                full = len(kept) == self.encoder.config.num_attention_heads
                kwargs["position_bias"] = bias if full else bias[:, kept]
            out = enc.layer[i](hidden, attention_mask=ext, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Logits of every exit, lowest first."""
        hidden = self.embed(input_ids, token_type_ids)
        outs, prev = [], 0
        for layer, head in zip(self.layers, self.heads, strict=True):
            hidden = self.run_layers(hidden, attention_mask, prev, layer)
            outs.append(head(hidden))
            prev = layer
        return outs


def _init_top_head(model: MultiExitModel, base_dir: Path) -> None:
    """Start the top exit from a fine-tuned classifier's head (RoBERTa/MPNet layout) when shapes fit."""
    from safetensors import safe_open

    files = list(base_dir.glob("*.safetensors"))
    if not files or model.layers[-1] != model.encoder.config.num_hidden_layers:
        return
    want = {f"classifier.{k}": k for k in ("dense.weight", "dense.bias", "out_proj.weight", "out_proj.bias")}
    found = {}
    with safe_open(files[0], "pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
            if key in want:
                found[want[key]] = f.get_tensor(key)
    head = model.heads[-1]
    if len(found) == len(want) and all(found[k].shape == v.shape for k, v in head.state_dict().items()):
        head.load_state_dict(found)


def layer_flops(config, seq_len: float, layer: int = 0) -> float:  # noqa: ANN001
    """Multiply-accumulates x2 of one encoder layer on one text of ``seq_len`` tokens."""
    h = config.hidden_size
    heads = len(kept_heads(config)[layer]) if layer < config.num_hidden_layers else config.num_attention_heads
    a = heads * (h // config.num_attention_heads)
    proj = 4 * seq_len * h * a  # q, k, v, o
    scores = 2 * seq_len * seq_len * a  # q.k and p.v
    ffn = 2 * seq_len * h * config.intermediate_size
    return 2.0 * (proj + scores + ffn)


def exit_flops(config, layers: tuple[int, ...], seq_len: float) -> list[float]:  # noqa: ANN001
    """FLOPs of answering at each exit (all layers below it), for one text of ``seq_len`` tokens."""
    per = [layer_flops(config, seq_len, i) for i in range(config.num_hidden_layers)]
    return [float(sum(per[:layer])) for layer in layers]
