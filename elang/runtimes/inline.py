"""A router's first stage run inside the router's own process (``inline_stage``), no BLS hop.

The writer copies the stage's version folder into the router's (``elang.repository.writer``:
``copy_inline_stage``) with a ``stage.json`` holding the stage's config parameters. Here that
copy becomes what the execution model calls as its first stage (``CascadeExecutor``'s
``first_stage``): the same inputs a BLS call would carry, the same answer a BLS call would
return (the task's ``stage_answer``), so routing is the same either way.

* a classifier stage (``model.onnx`` + tokenizer): TEXT -> logits;
* a generating stage (exported encoder-decoder): TEXT and per-row MAX_NEW_TOKENS -> the
  generated text, token ids and token energies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elang import contract as c


def load_inline_stage(version_dir: Path, settings: Any) -> Callable[[Any], Any]:
    """The first stage ``settings.inline_stage`` from its copy in the router's version folder,
    as a callable from the stage's inputs to its answer (``settings``: a RouterSettings)."""
    stage = settings.inline_stage
    folder = Path(version_dir) / stage
    meta = folder / c.INLINE_STAGE_FILE
    if not meta.is_file():
        raise FileNotFoundError(
            f"inline_stage {stage!r}: {meta} not found; rewrite the router (elang export, write_router) "
            f'or set inline_stage to "" to call {stage} over BLS'
        )
    params = json.loads(meta.read_text())["parameters"]
    return settings.spec.inline_stage(folder, params, settings)
