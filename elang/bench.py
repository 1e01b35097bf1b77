"""Measurements through the real server (figures for the docs come from here).

``compare_stage_layouts``: one Python-backend model that tokenizes and runs ONNX Runtime
(``python-ort``) against the two-model ensemble tokenizer -> ONNX (``python-ensemble``),
same ONNX file, same server, requests interleaved so machine drift cancels.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from elang.client.stats import percentiles
from elang.inputs import encode_texts
from elang.repository import ClassifierSpec, write_classifier

log = logging.getLogger(__name__)


def machine_line() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, {date.today().isoformat()}"


def compare_stage_layouts(
    model_dir: Path,
    texts: list[str],
    batch_sizes: tuple[int, ...] = (1, 32),
    rounds: int = 100,
    max_length: int = 128,
) -> list[dict]:
    """p50/p95 latency of one request, per layout and batch size, measured through tritonserver."""
    import tritonclient.grpc as grpcclient
    from tqdm import tqdm

    from elang.server import TritonServer

    layouts = {"python-ort": "stage_single", "python-ensemble": "stage_ensemble"}
    with tempfile.TemporaryDirectory(prefix="elang-layout-") as tmp:
        repo = Path(tmp) / "repo"
        for runtime, name in layouts.items():
            write_classifier(repo, name, ClassifierSpec(Path(model_dir), runtime=runtime, max_length=max_length))
        rows = []
        with TritonServer(repo) as server:
            client = grpcclient.InferenceServerClient(server.grpc_url)
            for bs in batch_sizes:
                batch = (texts * (bs // len(texts) + 1))[:bs]
                inp = grpcclient.InferInput("TEXT", [bs, 1], "BYTES")
                inp.set_data_from_numpy(encode_texts(batch))
                for name in layouts.values():  # warm-up
                    for _ in range(3):
                        client.infer(name, [inp])
                times: dict[str, list[float]] = {n: [] for n in layouts.values()}
                for _ in tqdm(range(rounds), desc=f"batch {bs}", unit="round"):
                    for name in layouts.values():
                        t0 = time.perf_counter()
                        client.infer(name, [inp])
                        times[name].append(time.perf_counter() - t0)
                for runtime, name in layouts.items():
                    p = percentiles(np.array(times[name]) * 1e3, (50, 95))
                    rows.append({"layout": runtime, "batch": bs, "p50_ms": p[50], "p95_ms": p[95]})
    return rows


def format_layout_table(rows: list[dict]) -> str:
    lines = ["| batch | layout | p50 ms | p95 ms | p50 vs python-ort |", "|---|---|---|---|---|"]
    base = {r["batch"]: r["p50_ms"] for r in rows if r["layout"] == "python-ort"}
    for r in rows:
        ratio = r["p50_ms"] / base[r["batch"]]
        lines.append(f"| {r['batch']} | {r['layout']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {ratio:.2f}x |")
    return "\n".join(lines)
