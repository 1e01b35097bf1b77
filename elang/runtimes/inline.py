"""A router's stages run inside the router's own process (``inline_stage``), no BLS hop.

The writer copies each such stage's version folder into the router's (``elang.repository.writer``:
``copy_inline_stage``) with a ``stage.json`` holding the stage's config parameters. Here those
copies become what the execution model calls in-process (``CascadeExecutor``'s
``local_stages``): the same inputs a BLS call would carry, the same answer a BLS call would
return (the task's ``stage_answer``), so routing is the same either way.

* a classifier stage (``model.onnx`` + tokenizer): TEXT -> logits;
* a generating stage (exported encoder-decoder): TEXT and per-row MAX_NEW_TOKENS -> the
  generated text, token ids and token energies;
* a segment of a multi-exit encoder: TEXT (the first) or the previous segment's HIDDEN and
  MASK -> its exit's logits and the hidden state it hands on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elang import contract as c


def load_inline_stages(version_dir: Path, settings: Any) -> dict[str, Callable[[Any], Any]]:
    """Every stage of ``settings.inline_stages`` from its copy in the router's version folder,
    as callables from the stage's inputs to its answer (``settings``: a RouterSettings)."""
    loaded = {}
    for stage in settings.inline_stages:
        folder = Path(version_dir) / stage
        meta = folder / c.INLINE_STAGE_FILE
        if not meta.is_file():
            raise FileNotFoundError(
                f"inline_stage {stage!r}: {meta} not found; rewrite the router (elang export, write_router) "
                f'or set inline_stage to "" to call {stage} over BLS'
            )
        params = json.loads(meta.read_text())["parameters"]
        loaded[stage] = settings.spec.inline_stage(folder, params, settings)
    return loaded
