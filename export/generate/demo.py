"""``elang demo --task g2p``: train the T5 Swift and Super (cached), export both as generating
stages, serve them, and compare Swift-only, Super-only and E-LANG on the CMUdict test words."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from elang import contract as c
from elang.client.client import ElangClient
from elang.data.seq2seq import Seq2SeqSet, error_rates, g2p_splits
from elang.export.generate.shipped import SHIPPED_DIR, shipped_pair
from elang.export.generate.stage import export_seq2seq_stage
from elang.export.generate.train import PRESETS, Seq2SeqTrainResult, quick, train_seq2seq
from elang.ops.server import TritonServer


def run_g2p_demo(
    cache: Path, work: Path, quick_run: bool = False, limit: int | None = None, concurrency: int = 4
) -> int:

    splits = g2p_splits()
    if quick_run:
        splits = replace(splits, train=Seq2SeqSet(splits.train.inputs[:5000], splits.train.references[:5000]))
    print(f"data: {splits.describe()}")
    shipped = None if quick_run else shipped_pair()
    if shipped:
        print(f"the shipped pair ({SHIPPED_DIR}, every file's SHA-256 checked): no training")
    trained = {}
    for role in c.STAGES:
        recipe = quick(PRESETS[role]) if quick_run else PRESETS[role]
        if shipped:
            trained[role] = Seq2SeqTrainResult(*shipped[role])
        else:
            trained[role] = train_seq2seq(recipe, splits, cache)
        m = trained[role].metrics
        print(
            f"{role}: {m.get('recipe', {}).get('name', recipe.name)} test WER {m['test_wer']:.2%} PER {m['test_per']:.2%} ({trained[role].checkpoint})"
        )
    repo = Path(work) / "g2p-repository"
    stamp = Path(work) / "g2p-repository.json"
    want = {r: str(t.checkpoint) for r, t in trained.items()}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == want and (repo / c.ROUTER_MODEL).is_dir()):
        shutil.rmtree(repo, ignore_errors=True)
        for role in c.STAGES:
            print(
                "\n".join(export_seq2seq_stage(trained[role].checkpoint, role, repo, splits.validation.inputs).lines())
            )
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(want))
    test = splits.test.head(limit)
    rows = []
    with TritonServer(repo) as server:
        print(f"serving {repo} on gRPC {server.grpc_url} (log {server.log_path})")
        for model in c.STAGES + (c.ROUTER_MODEL,):
            res = ElangClient(server.grpc_url, model=model, timeout_s=600).generate(
                test.inputs, batch_size=32, concurrency=concurrency, references=test.references, progress=True
            )
            if res.failed:
                raise RuntimeError(f"{len(res.failed)} inputs failed on {model}: {res.failed[0].error}")
            rates = error_rates([p.output for p in res.predictions], test.references)
            rows.append((model, res.stats, rates))
    print()
    print(g2p_table(rows, len(test)))
    return 0


def g2p_table(rows: list, n: int) -> str:
    label = {c.SWIFT_MODEL: "Swift only", c.SUPER_MODEL: "Super only", c.ROUTER_MODEL: "E-LANG (token energy)"}
    super_tp = next(s.throughput for m, s, _ in rows if m == c.SUPER_MODEL)
    lines = [
        f"| system ({n} test words) | WER | PER | Super share | words/s | speed-up vs Super |",
        "|---|---|---|---|---|---|",
    ]
    for model, s, r in rows:
        frac = {c.SWIFT_MODEL: 0.0, c.SUPER_MODEL: 1.0}.get(model, s.super_fraction)
        lines.append(
            f"| {label[model]} | {r.wer:.2%} | {r.per:.2%} | {frac:.1%} | {s.throughput:.1f} | {s.throughput / super_tp:.2f}x |"
        )
    return "\n".join(lines)
