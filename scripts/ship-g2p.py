"""Copy a trained G2P Swift and Super into weights/g2p/ and pin every file's SHA-256 in
export/generate/shipped.py (issue 24: the pair ships so `elang demo --task g2p` starts at the export).

    .venv/bin/python scripts/ship-g2p.py SWIFT_CHECKPOINT SUPER_CHECKPOINT

Each CHECKPOINT is the folder `elang train-seq2seq` printed (its run's metrics.json, one level up,
is shipped beside it). The pins are rewritten in place; commit both.
"""

import argparse
import json
import pprint
import re
import shutil
from pathlib import Path

from elang.export.generate.shipped import METRICS_FILE, SHIPPED_DIR, pins_of

MAX_BYTES = 30 * 1024 * 1024  # the budget for both models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("swift", type=Path)
    parser.add_argument("super", type=Path)
    args = parser.parse_args()
    pins = {}
    for role in ("swift", "super"):
        src = getattr(args, role)
        if not (src / "config.json").is_file():
            raise SystemExit(f"{src}: not a checkpoint folder (no config.json)")
        dst = SHIPPED_DIR / role
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        metrics = json.loads((src.parent / METRICS_FILE).read_text())
        (dst / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        pins[role] = pins_of(dst)
    size = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file())
    if size > MAX_BYTES:
        raise SystemExit(f"{SHIPPED_DIR}: {size / 2**20:.1f} MiB, over the 30 MiB budget")
    module = Path(__file__).resolve().parents[1] / "export" / "generate" / "shipped.py"
    text = module.read_text()
    body = "SHIPPED_SHA256: dict[str, dict[str, str]] = " + pprint.pformat(pins, width=110, sort_dicts=True) + "\n"
    text, n = re.subn(r"SHIPPED_SHA256: dict\[str, dict\[str, str\]\] = \{.*?\n(?=\n)", body, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{module}: SHIPPED_SHA256 not found")
    module.write_text(text)
    print(f"{SHIPPED_DIR}: {size / 2**20:.1f} MiB; pins written to {module}")


if __name__ == "__main__":
    main()
