"""End-to-end jobs: build the tiny repository and run the demo against the real server."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from elang.export.onnx_export import export_checkpoint
from elang.export.tiny import TINY_SUPER, TINY_SWIFT, make_tiny_checkpoint, sample_rows

from elang import contract as c
from elang.classifier import OnnxTextClassifier
from elang.repository import ClassifierSpec, RouterSpec, write_repository
from elang.routing import get_policy, threshold_for_fraction

log = logging.getLogger(__name__)


def default_cache() -> Path:
    import os

    return Path(os.environ.get("ELANG_CACHE", Path.home() / ".cache" / "elang"))


def build_tiny_repository(
    repository: Path,
    work_dir: Path | None = None,
    super_fraction: float = 0.3,
    runtime: str = "python-ort",
    policy: str = "energy",
) -> dict:
    """Tiny Swift (1 layer) and Super (2 layers) with their own tokenizers, exported, written as a repository.

    The router threshold sends ``super_fraction`` of the embedded sample texts to Super.
    """
    repository = Path(repository)
    work = Path(work_dir) if work_dir else repository.parent / f"{repository.name}-work"
    texts = [t for t, _ in sample_rows()]
    parity = {}
    for name, spec in ((c.SWIFT_MODEL, TINY_SWIFT), (c.SUPER_MODEL, TINY_SUPER)):
        ckpt = make_tiny_checkpoint(work / f"{name}-checkpoint", spec)
        report = export_checkpoint(ckpt, work / name, texts)
        parity[name] = report.max_abs_diff
        log.info("exported tiny %s: max |onnx - torch| = %.2e", name, report.max_abs_diff)
    swift_logits = OnnxTextClassifier(work / c.SWIFT_MODEL)(texts)
    pol = get_policy(policy)
    threshold = threshold_for_fraction(pol.score(swift_logits), super_fraction, pol)
    write_repository(
        repository,
        ClassifierSpec(work / c.SWIFT_MODEL, runtime=runtime),
        ClassifierSpec(work / c.SUPER_MODEL, runtime=runtime),
        RouterSpec(policy=policy, threshold=repr(threshold), calibration_version=f"tiny-sample-q{super_fraction:g}"),
    )
    return {
        "repository": str(repository),
        "policy": policy,
        "threshold": threshold,
        "super_fraction_on_sample": super_fraction,
        "parity_max_abs_diff": parity,
    }


def run_demo(work_dir: Path | None = None, super_fraction: float = 0.3) -> int:
    """Build the tiny repository, start the real server, classify the sample set, print stats."""
    from elang.client.client import ElangClient

    from elang.server import TritonServer

    work = Path(work_dir) if work_dir else default_cache() / "demo"
    repo = work / "model_repository"
    shutil.rmtree(repo, ignore_errors=True)
    info = build_tiny_repository(repo, work / "models", super_fraction)
    print(f"repository {repo} (threshold {info['threshold']:.4f}, policy {info['policy']})")
    rows = sample_rows()
    texts, labels = [t for t, _ in rows], [lab for _, lab in rows]
    with TritonServer(repo) as server:
        print(f"serving on gRPC {server.grpc_url}, HTTP {server.http_url} (log {server.log_path})")
        for model in (c.SWIFT_MODEL, c.SUPER_MODEL, c.ROUTER_MODEL):
            client = ElangClient(server.grpc_url, model=model)
            result = client.classify(texts, batch_size=8, concurrency=2, true_labels=labels)
            print(f"\n== {model} ==\n{result.stats.format_table()}")
            if result.failed:
                print(json.dumps([p.to_dict() for p in result.failed], indent=2))
                return 1
    print("\nThe tiny models are random: accuracy is chance level; the real pair comes with `elang train`.")
    return 0
