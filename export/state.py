"""A training run's state on disk, shared by the classifier and seq2seq training loops.

The model, optimizer and schedule, the run's position (the loop's own dict) and torch's RNG
(dropout's stream), written whole to a temporary name and renamed, so a kill never leaves half a
file; a resumed run continues at the step it reached and draws what the unbroken run would.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def save_state(path: Path, model, opt, sched, position: dict) -> None:  # noqa: ANN001 - torch objects
    import torch

    path = Path(path)
    tmp = path.with_suffix(".tmp")
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "position": position,
        "rng": torch.get_rng_state(),
    }
    torch.save(state, tmp)
    tmp.replace(path)


def restore_state(path: Path, model, opt, sched) -> dict | None:  # noqa: ANN001 - torch objects
    """The saved position after loading the rest into ``model``, ``opt`` and ``sched``; None when
    there is no state, or it is unreadable (the run then starts over, with a warning)."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except Exception as exc:  # noqa: BLE001 - an unreadable state costs the run, not the user
        log.warning("%s is unreadable (%s); training starts over", path, exc)
        return None
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    return state["position"]
