"""`elang capacity`: replicas and cost per layout from a bench report (``elang.ops.capacity``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from elang.ops.capacity import Prices, plan, plot, read_bench, table


def _loads(raw: str) -> list[float]:
    try:
        loads = sorted({float(x) for x in raw.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"loads must be numbers separated by commas, got {raw!r}") from None
    if not loads or loads[0] < 0:
        raise argparse.ArgumentTypeError(f"give one or more loads >= 0 (texts/s), got {raw!r}")
    return loads


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "capacity",
        help="replicas and cost of E-LANG in two pools, in one pod and of the Super alone, from bench costs",
        description="Steady-state capacity plan from the throughputs `elang bench` measured (its bench.json): "
        "replicas per pool and cost per hour for E-LANG with the Super on its own pool, E-LANG in one pod, "
        "and the fastest Super-only variant, at each load; a plot of cost against load.",
    )
    p.add_argument("bench", type=Path, help="an elang bench --report folder or its bench.json")
    p.add_argument("--load", type=_loads, default=_loads("50,100,200,500,1000,2000"), help="texts/s, comma-separated")
    p.add_argument("--concurrency", type=int, default=None, help="which bench concurrency (default: the highest)")
    p.add_argument("--router", default="elang", help="the router measured (default elang; e.g. elang_super_bf16)")
    p.add_argument("--escalation", type=float, default=None, help="share sent to the Super (default: measured)")
    p.add_argument("--utilization", type=float, default=0.7, help="share of a replica's throughput to plan on")
    p.add_argument("--router-price", type=float, default=1.0, help="per replica-hour of a router / one-pod replica")
    p.add_argument("--super-price", type=float, default=1.0, help="per replica-hour of a Super replica")
    p.add_argument(
        "--super-throughput", type=float, default=None, help="texts/s of one Super replica on its own hardware"
    )
    p.add_argument("--min-super-replicas", type=int, default=1, help="Super replicas at any load (0: scale to zero)")
    p.add_argument("--plot", type=Path, default=None, help="write the cost-against-load plot here (PNG)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    costs = read_bench(args.bench, args.concurrency, args.router)
    prices = Prices(
        router=args.router_price,
        super_=args.super_price,
        utilization=args.utilization,
        min_super=args.min_super_replicas,
        super_throughput=args.super_throughput,
    )
    f = costs.escalation if args.escalation is None else args.escalation
    plan(max(args.load), costs, prices, args.escalation)  # refuse bad values before printing
    print(
        f"from {costs.source} at concurrency {costs.concurrency}: router + Swift {costs.router:.1f} texts/s, "
        f"{costs.super_name} {args.super_throughput or costs.super_:.1f} texts/s"
        f"{' (given)' if args.super_throughput else ''}, {args.router} {costs.elang:.1f} texts/s at "
        f"{costs.escalation:.1%} escalated; planning at {f:.1%} escalated, utilization {prices.utilization:.0%}"
    )
    print(table(args.load, costs, prices, args.escalation))
    if args.plot:
        print(f"written: {plot(args.load, costs, prices, args.plot, args.escalation)}")
    return 0
