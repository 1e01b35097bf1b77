#!/usr/bin/env python3
"""One classifier stage served alone against the same stage offline: sequential one-text requests,
Triton's per-call statistics (compute_infer: the stub's execute, tokenization included) beside
``OnnxTextClassifier.classify`` on the same texts in this process (docs/BENCHMARKS.md 10.4).

    .venv/bin/python scripts/stub-probe.py STAGE_DIR [STAGE_DIR ...] [--texts 400] [--rounds 2]

Each STAGE_DIR is a stage's model folder (``REPO/swift``, with ``config.pbtxt`` and ``1/``). Each is
copied into a repository of its own and served alone, one server at a time; the stages take
turns for ``--rounds`` rounds, so drift of a shared machine shows as spread between rounds.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stages", type=Path, nargs="+")
    ap.add_argument("--texts", type=int, default=400, help="one-text requests per stage and round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import tritonclient.grpc as grpcclient

    from elang.data.datasets import default_splits
    from elang.ops.server import TritonServer
    from elang.repository.config import model_config, parameters
    from elang.runtimes.classifier import OnnxTextClassifier, classifier_options

    rng = random.Random(0)
    pool = default_splits().test.texts
    sample = [rng.choice(pool) for _ in range(args.texts)]
    print("| round | stage | offline classify ms | served wall ms | compute_infer ms | queue ms |")
    print("|---|---|---|---|---|---|")
    for r in range(args.rounds):
        for stage in args.stages:
            repo = Path(tempfile.mkdtemp(prefix="stub-probe-")) / "repo"
            repo.mkdir(parents=True)
            name = stage.name
            shutil.copytree(stage, repo / name)
            opts = classifier_options(parameters(model_config(repo, name)))
            clf = OnnxTextClassifier(repo / name / "1", **opts)
            for t in sample[:20]:
                clf.classify([t])
            t0 = time.perf_counter()
            for t in sample:
                clf.classify([t])
            offline = (time.perf_counter() - t0) / len(sample) * 1e3
            del clf
            with TritonServer(repo, startup_timeout_s=180) as srv:
                client = grpcclient.InferenceServerClient(srv.grpc_url)

                def ask(text: str, client=client, name=name) -> None:  # noqa: ANN001
                    inp = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
                    inp.set_data_from_numpy(np.array([[text.encode()]], dtype=object))
                    client.infer(name, [inp])

                for t in sample[:20]:
                    ask(t)
                s0 = client.get_inference_statistics(name).model_stats[0].inference_stats
                t0 = time.perf_counter()
                for t in sample:
                    ask(t)
                wall = (time.perf_counter() - t0) / len(sample) * 1e3
                s1 = client.get_inference_statistics(name).model_stats[0].inference_stats
            n = s1.success.count - s0.success.count

            def ms(key: str, s0=s0, s1=s1, n=n) -> float:  # noqa: ANN001
                return (getattr(s1, key).ns - getattr(s0, key).ns) / n / 1e6

            label = f"{stage.resolve().parent.name}/{name}"
            print(f"| {r + 1} | {label} ({opts['engine']} {opts['precision']}) | {offline:.2f} | {wall:.2f} | "
                  f"{ms('compute_infer'):.2f} | {ms('queue'):.2f} |", flush=True)  # fmt: skip
            shutil.rmtree(repo.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
