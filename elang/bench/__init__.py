"""Measurements through the real server (figures for the docs come from here).

``compare_stage_layouts``: one Python-backend model that tokenizes and runs ONNX Runtime
(``python-ort``) against the two-model ensemble tokenizer -> ONNX (``python-ensemble``),
same ONNX file, same server, requests interleaved so machine drift cancels.
"""

from elang.bench.command import run_bench_command
from elang.bench.load import (
    FULL_DEPTH,
    NO_ESCALATION,
    BenchConfig,
    LoadResult,
    ideal_speedup,
    machine_line,
    run_bench,
    run_load,
)
from elang.bench.report import bench_markdown, plot_bench, profile_markdown, prom_samples, router_profile
from elang.bench.soak import (
    compare_stage_layouts,
    format_layout_table,
    process_tree_rss_mb,
    profile_stage,
    rss_slope_mb_per_min,
)

__all__ = [
    "BenchConfig",
    "FULL_DEPTH",
    "LoadResult",
    "NO_ESCALATION",
    "bench_markdown",
    "compare_stage_layouts",
    "format_layout_table",
    "ideal_speedup",
    "machine_line",
    "plot_bench",
    "process_tree_rss_mb",
    "profile_markdown",
    "profile_stage",
    "prom_samples",
    "router_profile",
    "rss_slope_mb_per_min",
    "run_bench",
    "run_bench_command",
    "run_load",
]
