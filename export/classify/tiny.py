"""Tiny random-initialised BERT classifiers made from a config, for tests and the quick demo.

Each tiny model gets its own WordPiece tokenizer trained on a small corpus, so a tiny
Swift and a tiny Super can differ in tokenizer as real pairs do (MiniLM vs MPNet).
Needs the `export` extra (torch, transformers).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from elang.data.datasets import save_label_map

log = logging.getLogger(__name__)

SAMPLE_LABELS = ("negative", "neutral", "positive")


def sample_rows() -> list[tuple[str, str]]:
    """The embedded sample set: (text, label) rows shipped with the package."""
    text = resources.files("elang.data").joinpath("sample.csv").read_text(encoding="utf-8")
    return [(r["text"], r["label"]) for r in csv.DictReader(text.splitlines())]


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny BERT classifier."""

    layers: int = 1
    hidden: int = 32
    heads: int = 2
    vocab_size: int = 300
    seed: int = 0
    labels: tuple[str, ...] = SAMPLE_LABELS
    positions: int = 512  # max_position_embeddings and the tokenizer's model_max_length


TINY_SWIFT = TinySpec(layers=1, hidden=32, vocab_size=250, seed=1)
TINY_SUPER = TinySpec(layers=2, hidden=48, vocab_size=400, seed=2)


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int = 512, seed: int = 0):  # noqa: ANN201
    """A BERT-style uncased WordPiece tokenizer built from ``texts``, the same on every run: the
    specials, every character (alone and as a ``##`` continuation), then the ``vocab_size`` most
    frequent words (ties in word order), their ids shuffled by ``seed`` (so two tiny models of
    other seeds give the same word other ids, as two real tokenizers do). The tokenizers library's
    trainer breaks ties in hash order: its vocabulary, and every tiny model on it, changed per run."""
    import random
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    chars = sorted({ch for w in words for ch in w})
    vocab = list(specials) + chars + [f"##{ch}" for ch in chars]
    taken = set(vocab)
    budget = len(vocab) + vocab_size  # the characters are not counted: every word stays spellable
    for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= budget:
            break
        if w not in taken:
            vocab.append(w)
            taken.add(w)
    rest = vocab[len(specials) :]
    random.Random(seed).shuffle(rest)
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(specials + rest)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def make_tiny_checkpoint(out_dir: str | Path, spec: TinySpec, corpus: list[str] | None = None) -> Path:
    """Write a Hugging Face checkpoint folder (config, weights, tokenizer) of a tiny BERT classifier."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = corpus if corpus is not None else [t for t, _ in sample_rows()]
    tokenizer = train_tokenizer(texts, spec.vocab_size, spec.positions, spec.seed)
    torch.manual_seed(spec.seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.hidden * 2,
        max_position_embeddings=spec.positions,
        num_labels=len(spec.labels),
        id2label=dict(enumerate(spec.labels)),
        label2id={lab: i for i, lab in enumerate(spec.labels)},
        initializer_range=0.3,  # wide init so energies spread and routing thresholds matter
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_tiny_multi_exit(
    out_dir: str | Path,
    spec: TinySpec,
    exits: tuple[int, ...],
    model_type: str = "bert",
    corpus: list[str] | None = None,
    temperatures: tuple[float, ...] | None = None,
) -> Path:
    """A tiny multi-exit checkpoint (random weights, exits after ``exits``), BERT or MPNet, with
    its tokenizer and labels: what `elang train --exits` writes, without the training."""
    import torch
    from transformers import AutoModel, MPNetConfig

    from elang.export.exits.model import MultiExitModel

    out = Path(out_dir)
    base = make_tiny_checkpoint(out.with_name(out.name + "-base"), spec, corpus)
    torch.manual_seed(spec.seed)
    if model_type == "mpnet":
        cfg = MPNetConfig(
            vocab_size=len(train_tokenizer(corpus or [t for t, _ in sample_rows()], spec.vocab_size)),
            hidden_size=spec.hidden,
            num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads,
            intermediate_size=spec.hidden * 2,
            initializer_range=0.3,
            attn_implementation="eager",
        )
        encoder = AutoModel.from_config(cfg, add_pooling_layer=False)
    else:
        encoder = AutoModel.from_pretrained(base, add_pooling_layer=False, attn_implementation="eager")
    model = MultiExitModel(encoder, exits, len(spec.labels)).eval()
    for head in model.heads:  # wide heads: the exits' confidences spread, so thresholds matter
        torch.nn.init.normal_(head.out_proj.weight, std=1.0)
    if temperatures is not None:
        model.temperatures = list(temperatures)
    model.save(out)
    for item in base.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens", "vocab")):
            (out / item.name).write_bytes(item.read_bytes())
    save_label_map(out, list(spec.labels))
    return out
