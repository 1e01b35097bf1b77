"""Reports of a bench run: the markdown table, the server counters (Prometheus text) and the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elang.bench.load import FULL_DEPTH, NO_ESCALATION, LoadResult, ideal_speedup

# Within this many points of the fp32 Super's accuracy a system counts as "at the Super's accuracy".
EQUAL_ACCURACY = 0.005


def super_only_systems(results: dict[tuple[str, int], LoadResult], conc: int) -> dict[str, LoadResult]:
    """The static Super-only variants measured at ``conc``: ``super`` (fp32) and ``super_*``
    (``super_int8``, ...): what a user could serve instead of the cascade."""
    return {n: r for (n, cc), r in results.items() if cc == conc and (n == "super" or n.startswith("super_"))}


def fastest_super_only(results: dict[tuple[str, int], LoadResult], conc: int) -> tuple[str, LoadResult] | None:
    """The headline's baseline: the static Super-only variant with the highest throughput."""
    variants = super_only_systems(results, conc)
    if not variants:
        return None
    name = max(variants, key=lambda n: variants[n].throughput)
    return name, variants[name]


def _is_cascade(name: str) -> bool:
    return (name == "elang" or name.startswith("elang_")) and FULL_DEPTH not in name


def headline(results: dict[tuple[str, int], LoadResult], conc: int) -> str | None:
    """The fastest cascade within ``EQUAL_ACCURACY`` of the fp32 Super, against the fastest
    static Super-only variant (named), with its fp32 ratio beside it."""
    sup, best = results.get(("super", conc)), fastest_super_only(results, conc)
    if sup is None or best is None:
        return None
    base_name, base = best
    cascades = {n: r for (n, cc), r in results.items() if cc == conc and _is_cascade(n)}
    fair = {n: r for n, r in cascades.items() if r.accuracy >= sup.accuracy - EQUAL_ACCURACY - 1e-12}
    if not fair:
        return (
            f"concurrency {conc}: headline: no cascade is within {100 * EQUAL_ACCURACY:.1f} pt of the fp32 "
            f"Super's accuracy ({sup.accuracy:.2%}); the fastest Super-only is {base_name} ({base.throughput:.1f} texts/s)"
        )
    name = max(fair, key=lambda n: fair[n].throughput)
    r = fair[name]
    return (
        f"concurrency {conc}: headline: {name} {r.throughput / base.throughput:.2f}x the fastest Super-only "
        f"({base_name}, {base.throughput:.1f} texts/s, accuracy {base.accuracy:.2%}) at accuracy {r.accuracy:.2%} "
        f"({100 * (r.accuracy - sup.accuracy):+.2f} pt vs the fp32 Super); {r.throughput / sup.throughput:.2f}x the fp32 Super"
    )


def bench_markdown(
    results: dict[tuple[str, int], LoadResult], concurrencies: tuple[int, ...], router: str = "elang"
) -> tuple[str, list[str]]:
    """The results table and the summary lines (the headline against the fastest static
    Super-only, speed-up, ideal bound, router overhead)."""
    lines = [
        "| concurrency | system | texts/s | p50 ms | p95 ms | p99 ms | accuracy | Super fraction | mean exit layer "
        "| speed-up vs Super | vs fastest Super-only | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for conc in concurrencies:
        sup = results.get(("super", conc))
        best = fastest_super_only(results, conc)
        for (name, cc), r in results.items():
            if cc != conc:
                continue
            lat = r.latency_ms()
            speed = f"{r.throughput / sup.throughput:.2f}x" if sup else "-"  # "-": no Super-only measured
            vs_best = f"{r.throughput / best[1].throughput:.2f}x" if best else "-"
            layer = "-" if r.mean_exit_layer is None else f"{r.mean_exit_layer:.2f}"
            lines.append(
                f"| {conc} | {name} | {r.throughput:.1f} | {lat[50]:.1f} | {lat[95]:.1f} | {lat[99]:.1f} | "
                f"{r.accuracy:.2%} | {r.super_fraction:.1%} | {layer} | {speed} | {vs_best} | "
                f"{r.failed + r.timed_out} |"
            )
        line = headline(results, conc)
        if line and len(super_only_systems(results, conc)) > 1:  # with one variant it is the fp32 line below
            summary.append(line)
        for (name, cc), r in results.items():
            if cc == conc and r.per is not None:
                summary.append(f"concurrency {conc}: {name} WER {1 - r.accuracy:.2%} PER {r.per:.2%}")
        sw, el = results.get(("swift", conc)), results.get((router, conc))
        if sw and sup and el:
            ratio = sup.throughput / sw.throughput  # c_swift / c_super from measured costs
            bound = ideal_speedup(ratio, el.super_fraction)
            measured = el.throughput / sup.throughput
            summary.append(
                f"concurrency {conc}: E-LANG {measured:.2f}x Super-only throughput; ideal bound "
                f"1/({ratio:.3f} + {el.super_fraction:.3f}) = {bound:.2f}x; measured/ideal {measured / bound:.0%}"
            )
        for (name, cc), r in results.items():
            full = results.get((f"{name}{FULL_DEPTH}", conc))
            if cc == conc and full is not None and r.exits:
                summary.append(
                    f"concurrency {conc}: {name} {r.throughput / full.throughput:.2f}x its own full depth "
                    f"({r.accuracy - full.accuracy:+.2%} accuracy, mean exit layer {r.mean_exit_layer:.2f} of "
                    f"{max(full.exits)})" + (f", {r.throughput / sup.throughput:.2f}x Super-only" if sup else "")
                )
        mine = [(name, r) for (name, cc), r in results.items() if cc == conc and r.client_cpu_s > 0]
        if mine:
            summary.append(
                f"concurrency {conc}: the load generator's own CPU (it shares this machine's cores with the "
                "server): "
                + ", ".join(
                    f"{name} {1e3 * r.client_cpu_s / max(1, len(r.routes)):.2f} ms/text ({r.client_cpu_share:.0%})"
                    for name, r in mine
                )
            )
        inf = results.get((NO_ESCALATION, conc))
        if sw and inf:
            over = inf.latency_ms()[50] / sw.latency_ms()[50] - 1
            summary.append(
                f"concurrency {conc}: router overhead (elang escalating nothing vs swift direct) p50 {over:+.1%}"
            )
    return "\n".join(lines), summary


def prom_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of metric ``name`` in Prometheus text format
    (``prometheus_client``'s parser: escaped quotes and commas in label values are fine)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        # The parser names a counter's samples <name>_total even when the text says <name>.
        if s.name == name or (family.type == "counter" and s.name == name + "_total" and not name.endswith("_total"))
    ]


def router_profile(metrics_text: str) -> dict[str, dict]:
    """Where each router's time went, from its counters on /metrics (docs/OPERATIONS.md).

    Per router model: executions and mean ms per ``execute``; the share of execute time spent
    in the first stage (which runs inside execute), the rest being the router's own work
    (parsing, routing, answers); and per stage: calls, texts per call and mean ms per call
    (later stages run outside execute, while the router takes its next batch).
    """
    prof: dict[str, dict] = {}

    def entry(model: str) -> dict:
        return prof.setdefault(model, {"stages": {}})

    for labels, v in prom_samples(metrics_text, "elang_router_executions_total"):
        entry(labels["model"])["executions"] = v
    for labels, v in prom_samples(metrics_text, "elang_router_duration_us_total"):
        entry(labels["model"])["duration_us"] = v
    for key in ("calls", "rows", "duration_us"):
        name = "elang_stage_duration_us_total" if key == "duration_us" else f"elang_stage_{key}_total"
        for labels, v in prom_samples(metrics_text, name):
            entry(labels["model"])["stages"].setdefault(labels["stage"], {})[key] = v
    out = {}
    for model, p in prof.items():
        n, total = p.get("executions", 0.0), p.get("duration_us", 0.0)
        if n <= 0 or total <= 0 or not p["stages"]:
            continue
        # The first stage sees every text, so it is the one with the most rows.
        first = max(p["stages"].values(), key=lambda st: st.get("rows", 0.0))
        first_share = min(1.0, first.get("duration_us", 0.0) / total)
        stages = {
            name: {
                "calls": int(st.get("calls", 0)),
                "rows_per_call": st.get("rows", 0) / st["calls"] if st.get("calls") else 0.0,
                "ms_per_call": st.get("duration_us", 0) / st["calls"] / 1e3 if st.get("calls") else 0.0,
            }
            for name, st in p["stages"].items()
        }
        out[model] = {
            "executions": int(n),
            "ms_per_execute": total / n / 1e3,
            "first_stage_share": first_share,
            "own_share": 1.0 - first_share,
            "stages": stages,
        }
    return out


def profile_markdown(profile: dict[str, dict]) -> str:
    if not profile:
        return ""
    lines = [
        "| router | executions | ms per execute | first stage's share | router's own share | stage calls: texts/call, ms/call |",
        "|---|---|---|---|---|---|",
    ]
    for model, p in sorted(profile.items()):
        calls = "; ".join(
            f"{name} {st['calls']}: {st['rows_per_call']:.1f}, {st['ms_per_call']:.2f}"
            for name, st in p["stages"].items()
        )
        lines.append(
            f"| {model} | {p['executions']} | {p['ms_per_execute']:.2f} | {p['first_stage_share']:.1%} | "
            f"{p['own_share']:.1%} | {calls} |"
        )
    return "\n".join(lines)


def plot_bench(results: dict[tuple[str, int], LoadResult], concurrencies: tuple[int, ...], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({n for n, _ in results})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        tps = [results[(name, c)].throughput if (name, c) in results else 0 for c in concurrencies]
        a1.bar(np.arange(len(concurrencies)) + i * width, tps, width, label=name)
        r = results.get((name, concurrencies[-1]))
        if r is not None:
            a2.scatter(r.throughput, r.accuracy * 100, label=name, s=50)
    a1.set_xticks(np.arange(len(concurrencies)) + width * (len(names) - 1) / 2, [str(c) for c in concurrencies])
    a1.set_xlabel("concurrent requests")
    a1.set_ylabel("texts / s")
    a1.legend(fontsize=7)
    a2.set_xlabel(f"texts / s at concurrency {concurrencies[-1]}")
    a2.set_ylabel("accuracy (%)")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
