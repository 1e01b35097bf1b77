#!/usr/bin/env python3
"""An OpenVINO int8 IR with its unquantized operations in fp32 or bf16, against the bf16 ONNX,
at the small batches a server forms: ms per text over random test texts padded to the batch's
longest, the variants interleaved (docs/BENCHMARKS.md 10.4).

    .venv/bin/python scripts/int8-rest-probe.py BF16_STAGE_VERSION_DIR INT8_STAGE_VERSION_DIR [--batches 1,4,8]

Each folder is a stage's version folder (``REPO/swift/1``): the first with ``model.onnx``, the
second with the int8 IR ``model.int8.xml`` that ``elang export --engine openvino --precision int8`` writes.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import openvino as ov

from elang.data.datasets import default_splits
from elang.runtimes.classifier import TextTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bf16_dir", type=Path)
    ap.add_argument("int8_dir", type=Path)
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--texts", type=int, default=120, help="texts per batch size and variant")
    args = ap.parse_args()
    texts = default_splits().test.texts[:800]
    tok = TextTokenizer(args.int8_dir, 128)
    core = ov.Core()
    variants = {
        "bf16 ONNX": (args.bf16_dir / "model.onnx", "bf16"),
        "int8 IR, rest fp32": (args.int8_dir / "model.int8.xml", "f32"),
        "int8 IR, rest bf16": (args.int8_dir / "model.int8.xml", "bf16"),
    }
    reqs = {
        k: core.compile_model(
            core.read_model(str(p)), "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        ).create_infer_request()
        for k, (p, hint) in variants.items()
    }
    names = [p.get_any_name() for p in core.read_model(str(variants["bf16 ONNX"][0])).inputs]
    rng = random.Random(0)
    print("| batch | " + " | ".join(f"{k} ms/text" for k in reqs) + " |")
    print("|---" * (len(reqs) + 1) + "|")
    for bs in (int(b) for b in args.batches.split(",")):
        batches = [tok(rng.sample(texts, bs)) for _ in range(max(10, args.texts // bs))]
        spent = dict.fromkeys(reqs, 0.0)
        for feeds in batches:
            for k, r in reqs.items():
                t0 = time.perf_counter()
                r.infer({n: feeds[n] for n in names})
                spent[k] += time.perf_counter() - t0
        n = len(batches) * bs
        print(f"| {bs} | " + " | ".join(f"{1000 * spent[k] / n:.2f}" for k in reqs) + " |", flush=True)


if __name__ == "__main__":
    main()
