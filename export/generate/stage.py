"""`elang export` of an encoder-decoder (T5 and kin): optimum's ``text2text-generation-with-past``
graphs, checked against PyTorch ``generate``, written as a generating stage.

Parity, on the validation inputs (500 by default): the serving tokenizer gives the training
tokenizer's ids; greedy tokens identical to PyTorch's on every row; every step's logits within
``atol`` (1e-4) and so the token energies. Anything else refuses the export and leaves the
repository as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elang import contract as c
from elang.core.routing import get_policy, threshold_for_fraction
from elang.export.classify.onnx import ExportError
from elang.export.classify.stage import router_version
from elang.repository.config import check_family, router_task
from elang.repository.generate import (
    GeneratorSpec,
    write_generate_router,
    write_generator,
)
from elang.repository.writer import RepositoryError, RouterSpec, refresh_routers
from elang.runtimes.generator import (
    DEFAULT_MAX_NEW_TOKENS,
    SEQ2SEQ_FILE,
    TARGET_TOKENIZER_DIR,
    OnnxSeq2SeqGenerator,
    token_energies,
)
from elang.tasks import get_task
from elang.tasks.generate import pad_steps

log = logging.getLogger(__name__)

PARITY_INPUTS = 500
DEFAULT_POLICY = "mean"


def is_encoder_decoder(checkpoint: Path) -> bool:
    cfg = Path(checkpoint) / "config.json"
    return cfg.is_file() and bool(json.loads(cfg.read_text()).get("is_encoder_decoder"))


@dataclass
class Seq2SeqParity:
    inputs: int
    token_mismatches: int
    tokenizer_mismatches: int
    max_logit_diff: float
    max_energy_diff: float
    atol: float
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.token_mismatches == 0
            and self.tokenizer_mismatches == 0
            and self.max_logit_diff <= self.atol
            and self.max_energy_diff <= self.atol
        )

    def describe(self) -> str:
        return (
            f"parity on {self.inputs} inputs: greedy tokens differ on {self.token_mismatches}, tokenizer ids on "
            f"{self.tokenizer_mismatches}; max |logit diff| {self.max_logit_diff:.2e}, max |energy diff| "
            f"{self.max_energy_diff:.2e} (atol {self.atol:g})"
        )


def export_onnx(checkpoint: Path, out: Path) -> Path:
    """Encoder, decoder and decoder-with-past graphs of ``checkpoint`` (optimum), plus its tokenizers."""
    from optimum.exporters.onnx import main_export

    checkpoint, out = Path(checkpoint), Path(out)
    try:
        main_export(
            str(checkpoint),
            output=str(out),
            task="text2text-generation-with-past",
            no_post_process=True,  # three graphs, not one merged decoder: the generator runs them as is
            do_validation=False,  # our own check follows (tokens and logits against generate)
        )
    except Exception as exc:  # noqa: BLE001 - optimum raises many kinds; say which checkpoint failed
        raise ExportError(f"optimum could not export {checkpoint} as text2text-generation-with-past: {exc}") from exc
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", SEQ2SEQ_FILE, "config.json"):
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    if (checkpoint / TARGET_TOKENIZER_DIR).is_dir():
        shutil.copytree(checkpoint / TARGET_TOKENIZER_DIR, out / TARGET_TOKENIZER_DIR, dirs_exist_ok=True)
    if not (out / "tokenizer.json").is_file() and (checkpoint / SPIECE_FILE).is_file():
        _convert_sentencepiece(checkpoint, out)
    if not (out / "tokenizer.json").is_file():
        raise ExportError(
            f"{checkpoint}: no fast tokenizer (tokenizer.json) and no SentencePiece model ({SPIECE_FILE}); "
            "save one with the checkpoint"
        )
    return out


SPIECE_FILE = "spiece.model"  # a T5 checkpoint's SentencePiece model (the Hugging Face layout)


def _convert_sentencepiece(checkpoint: Path, out: Path) -> None:
    """A T5 folder with only ``spiece.model``: its fast tokenizer (converted by transformers from the
    SentencePiece model) is what the stage serves; the parity check holds it to the SentencePiece one."""
    from transformers import AutoTokenizer

    try:
        fast = AutoTokenizer.from_pretrained(checkpoint, use_fast=True)
    except Exception as exc:  # noqa: BLE001 - conversion needs sentencepiece and protobuf
        raise ExportError(f"{checkpoint}: could not convert {SPIECE_FILE} to a fast tokenizer: {exc}") from exc
    if not fast.is_fast:
        raise ExportError(f"{checkpoint}: transformers gave no fast tokenizer for {SPIECE_FILE}")
    fast.save_pretrained(out)


def reference_tokenizer(checkpoint: Path):  # noqa: ANN201 - a transformers tokenizer
    """The tokenizer the checkpoint was trained with: its SentencePiece model itself where it has one."""
    from transformers import AutoTokenizer

    if (Path(checkpoint) / SPIECE_FILE).is_file():
        return AutoTokenizer.from_pretrained(checkpoint, use_fast=False)
    return AutoTokenizer.from_pretrained(checkpoint)


def check_parity(
    checkpoint: Path,
    exported: Path,
    inputs: list[str],
    max_new_tokens: int,
    atol: float = 1e-4,
    batch_size: int = 64,
    progress: bool = True,
) -> Seq2SeqParity:
    """Greedy ONNX generation against PyTorch ``generate`` (see the module docstring)."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    hf_tok = reference_tokenizer(checkpoint)
    gen = OnnxSeq2SeqGenerator(exported, max_new_tokens=max_new_tokens)
    rep = Seq2SeqParity(len(inputs), 0, 0, 0.0, 0.0, atol)
    for i in tqdm(range(0, len(inputs), batch_size), desc="parity", unit="batch", disable=not progress):
        chunk = inputs[i : i + batch_size]
        ids, mask = gen.encode(chunk)
        hf_ids = hf_tok(chunk, truncation=True, max_length=gen.max_source_tokens)["input_ids"]
        for row, want in enumerate(hf_ids):
            if list(ids[row, : int(mask[row].sum())]) != list(want):
                rep.tokenizer_mismatches += 1
                if len(rep.examples) < 5:
                    rep.examples.append(f"tokenizer: {chunk[row]!r}")
        out = gen(chunk, keep_logits=True)
        with torch.inference_mode():
            ref = model.generate(
                input_ids=torch.tensor(ids),
                attention_mask=torch.tensor(mask),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                output_scores=True,
                return_dict_in_generate=True,
            )
        seqs = ref.sequences[:, 1:].numpy()  # without the decoder start token
        scores = torch.stack(ref.scores, dim=1).numpy()  # [rows, steps, vocab]
        for row in range(len(chunk)):
            n = int(out.lengths[row])
            want = list(seqs[row, :n])
            if list(out.token_ids[row, :n]) != want or (n < seqs.shape[1] and want[-1:] != [gen.eos_id]):
                rep.token_mismatches += 1
                if len(rep.examples) < 5:
                    rep.examples.append(f"tokens: {chunk[row]!r} -> {out.texts[row]!r}")
                continue
            diff = float(np.abs(out.step_logits[row] - scores[row, :n]).max())
            rep.max_logit_diff = max(rep.max_logit_diff, diff)
            e_ref = token_energies(scores[row, :n], gen.temperature)
            rep.max_energy_diff = max(rep.max_energy_diff, float(np.abs(out.energies[row, :n] - e_ref).max()))
    return rep


@dataclass
class Seq2SeqExportReport:
    role: str
    checkpoint: str
    repository: str
    parity: Seq2SeqParity
    max_new_tokens: int
    router: str = ""

    def lines(self) -> list[str]:
        out = [
            f"exported {self.checkpoint} as generating stage {self.role} into {self.repository}",
            self.parity.describe(),
            f"max_new_tokens {self.max_new_tokens}",
        ]
        if self.router:
            out.append(f"router: {self.router}")
        return out


def checkpoint_limits(checkpoint: Path) -> dict:
    """max_new_tokens, max_source_tokens and max_text_bytes a checkpoint's training recorded (seq2seq.json).

    Our character-level checkpoints hold one token per character plus EOS, so an input of more
    than max_source_tokens - 1 bytes is refused rather than truncated."""
    meta_path = Path(checkpoint) / SEQ2SEQ_FILE
    if not meta_path.is_file():
        return {
            "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
            "max_source_tokens": 0,
            "max_text_bytes": c.DEFAULT_MAX_TEXT_BYTES,
        }
    meta = json.loads(meta_path.read_text())
    src = int(meta.get("max_source_tokens") or 0)
    return {
        "max_new_tokens": int(meta.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
        "max_source_tokens": src,
        "max_text_bytes": src - 1 if src > 1 else c.DEFAULT_MAX_TEXT_BYTES,
    }


def export_seq2seq_stage(
    checkpoint: Path,
    role: str,
    repository: Path,
    parity_inputs: list[str],
    max_new_tokens: int | None = None,
    atol: float = 1e-4,
    super_fraction: float = 0.3,
    serving: dict | None = None,
) -> Seq2SeqExportReport:
    """Export ``checkpoint`` as generating stage ``role`` of ``repository`` (see the module doc).

    The first export writes the generating `elang` router; a Swift export into an uncalibrated
    repository places its threshold so ``super_fraction`` of ``parity_inputs`` escalate."""
    if role not in c.STAGES:
        raise RepositoryError(f"--as must be one of {', '.join(c.STAGES)}, got {role!r}")
    repository = Path(repository)
    check_family(repository, get_task(c.TASK_GENERATE))
    first_export = router_task(repository) is None
    if not parity_inputs:
        raise RepositoryError("export needs inputs for the parity check")
    limits = checkpoint_limits(checkpoint)
    cap = int(max_new_tokens or limits["max_new_tokens"])
    with tempfile.TemporaryDirectory(prefix="elang-export-") as tmp:
        out = export_onnx(checkpoint, Path(tmp) / "onnx")
        parity = check_parity(checkpoint, out, parity_inputs[:PARITY_INPUTS], cap, atol)
        if not parity.ok:
            raise ExportError(
                f"{checkpoint}: the ONNX export does not match PyTorch ({parity.describe()}); "
                f"e.g. {'; '.join(parity.examples) or '-'}. The repository was not changed."
            )
        spec = GeneratorSpec(
            out,
            max_new_tokens=cap,
            max_source_tokens=limits["max_source_tokens"],
            max_text_bytes=limits["max_text_bytes"],
            **(serving or {}),
        )
        write_generator(repository, role, spec)
        report = Seq2SeqExportReport(role, str(checkpoint), str(repository), parity, cap)
        current = router_version(repository)
        default_version = current is None or current.startswith(("default", "uncalibrated"))
        if first_export or (role == c.SWIFT_MODEL and default_version):
            threshold = 0.0
            version = "uncalibrated"
            if role == c.SWIFT_MODEL:
                gen = OnnxSeq2SeqGenerator(out, max_new_tokens=cap)
                energies = np.concatenate(
                    [_pad(gen(parity_inputs[i : i + 64]).energies, cap) for i in range(0, len(parity_inputs), 64)]
                )
                pol = get_policy(DEFAULT_POLICY)
                threshold = threshold_for_fraction(pol.score(energies), super_fraction, pol)
                version = f"default-q{super_fraction:g}"
            write_generate_router(
                repository,
                RouterSpec(
                    task=c.TASK_GENERATE,
                    policy=DEFAULT_POLICY,
                    threshold=repr(float(threshold)),
                    max_new_tokens=cap,
                    max_text_bytes=limits["max_text_bytes"],
                    calibration_version=version,
                ),
            )
            report.router = f"{DEFAULT_POLICY} token energy, threshold {threshold:.4g} ({version})"
        else:  # the router stays: it learns the stage's batch limit and refreshes an inline copy
            refresh_routers(repository, role)
    return report


def _pad(values: np.ndarray, width: int) -> np.ndarray:
    return pad_steps(values, width, np.nan)
