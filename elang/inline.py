"""A router's first stage run inside the router's own process (``inline_stage``), no BLS hop.

The writer copies the stage's version folder into the router's (``elang.repository``:
``copy_inline_stage``) with a ``stage.json`` holding the stage's config parameters. Here that
copy becomes what the execution model calls as its first stage (``CascadeExecutor``'s
``first_stage``): the same inputs a BLS call would carry, the same answer a BLS call would
return (``elang.router.stage_answer``), so routing is the same either way.

* a classifier stage (``model.onnx`` + tokenizer): TEXT -> logits;
* a generating stage (exported encoder-decoder): TEXT and per-row MAX_NEW_TOKENS -> the
  generated text, token ids and token energies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from elang import contract as c
from elang.inputs import decode_texts


def load_inline_stage(version_dir: Path, settings: Any) -> Callable[[Any], Any]:
    """The first stage ``settings.inline_stage`` from its copy in the router's version folder,
    as a callable from the stage's inputs to its answer (``settings``: a RouterSettings)."""
    from elang.router import stage_answer

    stage = settings.inline_stage
    folder = Path(version_dir) / stage
    meta = folder / c.INLINE_STAGE_FILE
    if not meta.is_file():
        raise FileNotFoundError(
            f"inline_stage {stage!r}: {meta} not found; rewrite the router (elang export, write_router) "
            f'or set inline_stage to "" to call {stage} over BLS'
        )
    params = json.loads(meta.read_text())["parameters"]
    if settings.task == c.TASK_GENERATE:
        from elang.generation import OnnxSeq2SeqGenerator, generator_options

        generator = OnnxSeq2SeqGenerator(folder, **generator_options(params))
        max_bytes = int(params.get(c.PARAM_MAX_TEXT_BYTES, settings.max_text_bytes))

        def generate(inputs: dict[str, np.ndarray]) -> Any:
            texts = decode_texts(inputs[c.TEXT], max_bytes)
            caps = np.minimum(
                np.asarray(inputs[c.MAX_NEW_TOKENS], dtype=np.int64).reshape(-1), generator.max_new_tokens
            )
            return stage_answer(settings, generator(texts, caps).tensors())

        return generate
    from elang.classifier import OnnxTextClassifier, classifier_options

    classifier = OnnxTextClassifier(folder, **classifier_options(params))
    return lambda texts: classifier(decode_texts(texts, settings.max_text_bytes))
