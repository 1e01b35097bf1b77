#!/usr/bin/env python3
"""How an OpenVINO stage should use the cores when two callers want it at once: texts/s of one
stage's model under two concurrent callers, at the small batches a server forms (random test
texts padded to the batch's longest), the layouts interleaved batch by batch:

* ``latency, 1 request``: today's stage (``PERFORMANCE_HINT LATENCY``, every core, one infer
  request that callers take turns on);
* ``2 streams``: ``PERFORMANCE_HINT THROUGHPUT``, ``NUM_STREAMS 2``, one infer request per caller;
* ``2 x 1 thread``: two compiled copies, ``INFERENCE_NUM_THREADS 1`` each (two instances of one
  thread), pinned as OpenVINO pins by default, and ``unpinned`` (``ENABLE_CPU_PINNING`` off);
* ``serial`` (one caller, the latency model): the figure without contention;
* ``split``: one caller, each batch cut in two halves (each padded to its own longest) run at
  once on the two streams' requests (``start_async``/``wait``): two cores used by one call.

    .venv/bin/python scripts/ov-streams-probe.py STAGE_VERSION_DIR [--precision bf16|int8|fp32] [--batches 1,4,8]

``STAGE_VERSION_DIR`` is a python-ort stage's version folder (``REPO/swift/1``): ``model.onnx`` and
its tokenizer, plus the int8 IR ``model.int8.xml`` for ``--precision int8``.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from pathlib import Path

import openvino as ov

from elang.data.datasets import default_splits
from elang.runtimes.classifier import TextTokenizer
from elang.runtimes.openvino import model_file, precision_hint


def _two_callers(infer_a, infer_b, batches) -> float:  # noqa: ANN001
    """Seconds for two threads to run ``batches`` (split between them) through their infer."""
    half = len(batches) // 2
    parts = [(infer_a, batches[:half]), (infer_b, batches[half:])]

    def work(infer, mine) -> None:  # noqa: ANN001
        for feeds in mine:
            infer(feeds)

    threads = [threading.Thread(target=work, args=p) for p in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage_dir", type=Path)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "int8"))
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--texts", type=int, default=240, help="texts per batch size and layout")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each layout once per round)")
    args = ap.parse_args()
    texts = default_splits().test.texts[:800]
    tok = TextTokenizer(args.stage_dir, 128)
    core = ov.Core()
    path = str(model_file(args.stage_dir / "model.onnx", args.precision))
    hint = precision_hint(args.precision, core)

    def compiled(config: dict) -> ov.CompiledModel:
        return core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": hint, **config})

    latency = compiled({"PERFORMANCE_HINT": "LATENCY"})
    lat_req = latency.create_infer_request()
    lock = threading.Lock()

    def lat_infer(feeds) -> None:  # noqa: ANN001
        with lock:
            lat_req.infer(feeds)

    streams = compiled({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": "2", "INFERENCE_NUM_THREADS": 2})
    sa, sb = streams.create_infer_request(), streams.create_infer_request()
    one_a = compiled({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}).create_infer_request()
    one_b = compiled({"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}).create_infer_request()
    unpinned = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1, "ENABLE_CPU_PINNING": False}
    free_a = compiled(unpinned).create_infer_request()
    free_b = compiled(unpinned).create_infer_request()
    names = [p.get_any_name() for p in latency.inputs]

    def split_infer(halves) -> None:  # noqa: ANN001
        for req, feeds in zip((sa, sb), halves):
            req.start_async(feeds)
        for req, _ in zip((sa, sb), halves):
            req.wait()

    layouts = {
        "serial (1 caller)": None,
        "split": "split",
        "latency, 1 request": (lat_infer, lat_infer),
        "2 streams": (sa.infer, sb.infer),
        "2 x 1 thread": (one_a.infer, one_b.infer),
        "2 x 1 thread, unpinned": (free_a.infer, free_b.infer),
    }
    print(f"{args.stage_dir} precision {args.precision} (hint {hint}); streams model: "
          f"{streams.get_property('NUM_STREAMS')} streams, {streams.get_property('INFERENCE_NUM_THREADS')} threads")  # fmt: skip
    print("| batch | " + " | ".join(f"{k} texts/s" for k in layouts) + " |")
    print("|---" * (len(layouts) + 1) + "|")
    rng = random.Random(0)
    for bs in (int(b) for b in args.batches.split(",")):
        raw = [rng.sample(texts, bs) for _ in range(max(8, args.texts // bs))]
        batches = [{n: v for n, v in tok(b).items() if n in names} for b in raw]
        # each batch cut in two halves, each padded to its own longest (one half when a batch has one text)
        halves = [
            [
                {n: v for n, v in tok(p).items() if n in names}
                for p in (b[: (len(b) + 1) // 2], b[(len(b) + 1) // 2 :])
                if p
            ]
            for b in raw
        ]
        for feeds in batches[:4]:  # warm the shapes in every compiled model
            for req in (lat_req, sa, sb, one_a, one_b, free_a, free_b):
                req.infer(feeds)
        spent = dict.fromkeys(layouts, 0.0)
        for _ in range(args.rounds):
            for name, pair in layouts.items():
                if pair is None:
                    t0 = time.perf_counter()
                    for feeds in batches:
                        lat_req.infer(feeds)
                    spent[name] += time.perf_counter() - t0
                elif pair == "split":
                    t0 = time.perf_counter()
                    for h in halves:
                        split_infer(h)
                    spent[name] += time.perf_counter() - t0
                else:
                    spent[name] += _two_callers(*pair, batches)
        n = len(batches) * bs * args.rounds
        print(f"| {bs} | " + " | ".join(f"{n / spent[k]:.1f}" for k in layouts) + " |", flush=True)


if __name__ == "__main__":
    main()
