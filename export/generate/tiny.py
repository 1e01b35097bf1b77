"""Tiny T5 checkpoints made from configs, for tests: a G2P pair trained for a few seconds on a slice
of CMUdict (so rows stop at different lengths), and a "user's" T5 with one shared subword
tokenizer and no elang metadata (what t5-small or flan-t5 look like to the export).

Needs the `export` extra (torch, transformers).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from elang.data.seq2seq import Seq2SeqSplits, g2p_splits
from elang.export.generate.train import Seq2SeqRecipe, train_seq2seq

TINY_G2P = {
    "swift": Seq2SeqRecipe(
        "tiny-g2p-swift",
        d_model=32,
        d_ff=64,
        num_heads=4,
        encoder_layers=1,
        decoder_layers=1,
        epochs=3,
        lr=5e-3,
        batch_size=32,
        max_target_tokens=16,
        max_source_tokens=16,
        validation_words=50,
    ),
    "super": Seq2SeqRecipe(
        "tiny-g2p-super",
        d_model=48,
        d_ff=96,
        num_heads=4,
        encoder_layers=2,
        decoder_layers=1,
        epochs=3,
        lr=5e-3,
        batch_size=32,
        max_target_tokens=16,
        max_source_tokens=16,
        validation_words=50,
    ),
}


def tiny_g2p_splits(train: int = 1500) -> Seq2SeqSplits:
    """A small CMUdict split: ``train`` training words, 100 validation, 200 test, 300 calibration."""
    full = g2p_splits(0, (100, 200, 300))
    return replace(full, train=full.train.head(train))


def tiny_g2p_checkpoint(role: str, cache_dir: Path, splits: Seq2SeqSplits | None = None) -> Path:
    """A trained tiny G2P T5 (about 10 s on 2 cores; cached under ``cache_dir``)."""
    return train_seq2seq(TINY_G2P[role], splits or tiny_g2p_splits(), Path(cache_dir), progress=False).checkpoint


def tiny_sentencepiece_t5(out_dir: Path, texts: list[str], vocab_size: int = 200, seed: int = 0) -> Path:
    """A random-initialised T5 in the Hugging Face layout of a user's T5: a SentencePiece unigram
    model (``spiece.model``, trained here on ``texts``) and ``T5Tokenizer``'s files, no tokenizer.json."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model_file, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2,
    )  # fmt: skip
    (out_dir / "spiece.model").write_bytes(model_file.getvalue())
    tok = T5Tokenizer(vocab_file=str(out_dir / "spiece.model"), extra_ids=0, legacy=False)
    tok.save_pretrained(out_dir)
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=len(tok), d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    T5ForConditionalGeneration(cfg).save_pretrained(out_dir)
    return out_dir


def tiny_user_t5(out_dir: Path, texts: list[str], vocab_size: int = 120, seed: int = 0) -> Path:
    """A random-initialised T5 with a shared BPE tokenizer (Metaspace, EOS appended) and no seq2seq.json."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"])
    )
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=tok.get_vocab_size(),
        d_model=32,
        d_kv=8,
        num_heads=4,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    T5ForConditionalGeneration(cfg).save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
