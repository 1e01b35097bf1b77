"""A capacity model: replicas and cost of serving a load with E-LANG split in two pools, E-LANG
in one pod, or the Super alone, from the throughputs ``elang bench`` measured.

A replica is what one bench server ran on (its machine). Per layout, at a load of ``L`` texts
per second, a target utilization ``u`` and an escalation share ``f``:

* **disaggregated** (router pool: router + Swift; Super pool: the Super, scaled apart):
  ``ceil(L / (u * T_router))`` router replicas and ``max(min_super, ceil(f * L / (u * T_super)))``
  Super replicas, where ``T_router`` is the router escalating nothing (``elang@no-escalation``)
  and ``T_super`` the Super alone;
* **one pod** (today's layout: router, Swift and Super together): ``ceil(L / (u * T_elang))``
  replicas of the measured ``elang`` throughput (at another ``f``: each text costs
  ``1/T_elang + (f - f_measured) / T_super``);
* **Super only**: ``ceil(L / (u * T_super))`` replicas of the fastest Super-only variant.

Each replica costs its pool's price per hour (``router_price`` for router pods and one-pod
replicas, ``super_price`` for Super pods and Super-only replicas: the Super may sit on other
hardware, whose throughput ``super_throughput`` then replaces the measured one). This is a
steady-state model: no autoscaling delays, no burst headroom beyond ``u``, and ``f`` is taken
as fixed (it drifts with the traffic; the router's ``elang_super_fraction`` gauge shows it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

NO_ESCALATION = "elang@no-escalation"


@dataclass(frozen=True)
class MeasuredCosts:
    """Texts per second per replica, from one bench run at one concurrency."""

    router: float  # the router with its Swift, escalating nothing
    super_: float  # the fastest Super-only variant
    super_name: str
    elang: float  # the router as served (one pod), at its threshold
    escalation: float  # the share the router sent to the Super in that run
    concurrency: int
    source: str = ""

    def __post_init__(self) -> None:
        for key in ("router", "super_", "elang"):
            if not getattr(self, key) > 0:
                raise ValueError(f"throughput of {key.rstrip('_')} must be > 0, got {getattr(self, key)}")
        if not 0 <= self.escalation <= 1:
            raise ValueError(f"escalation share must be in [0, 1], got {self.escalation}")

    def elang_at(self, share: float) -> float:
        """The one-pod router's texts/s at another escalation share: each text costs the router's
        time plus ``share`` of a Super's, anchored at the measured point (exact there)."""
        per_text = 1.0 / self.elang + (share - self.escalation) / self.super_
        return 1.0 / max(per_text, 1.0 / self.router)


def read_bench(path: Path, concurrency: int | None = None, router: str = "elang") -> MeasuredCosts:
    """The throughputs of ``bench.json`` (a file or a bench --report folder) at ``concurrency``
    (default: the highest measured). Needs swift-less rows: ``router``, NO_ESCALATION and a Super."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not an elang bench report ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "config" in r for r in rows):
        raise ValueError(f"{path}: not an elang bench report (a list of configurations)")
    concs = sorted({int(r["concurrency"]) for r in rows})
    if not concs:
        raise ValueError(f"{path}: no measurements")
    conc = concs[-1] if concurrency is None else concurrency
    at = {r["config"]: r for r in rows if int(r["concurrency"]) == conc}
    if not at:
        raise ValueError(f"{path}: nothing measured at concurrency {conc} (measured: {concs})")
    supers = {name: r for name, r in at.items() if name == "super" or name.startswith("super_")}
    missing = [
        n for n, ok in ((router, router in at), (NO_ESCALATION, NO_ESCALATION in at), ("super", bool(supers))) if not ok
    ]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} at concurrency {conc}; run elang bench without --only")
    best = max(supers, key=lambda n: supers[n]["throughput"])
    return MeasuredCosts(
        router=float(at[NO_ESCALATION]["throughput"]),
        super_=float(supers[best]["throughput"]),
        super_name=best,
        elang=float(at[router]["throughput"]),
        escalation=float(at[router]["super_fraction"]),
        concurrency=conc,
        source=str(path),
    )


@dataclass(frozen=True)
class Layout:
    name: str
    router_replicas: int
    super_replicas: int
    cost_per_hour: float

    @property
    def replicas(self) -> int:
        return self.router_replicas + self.super_replicas


@dataclass(frozen=True)
class Prices:
    router: float = 1.0  # per replica-hour: a router pod, a one-pod replica
    super_: float = 1.0  # per replica-hour: a Super pod, a Super-only replica
    utilization: float = 0.7  # the share of a replica's measured throughput a pool plans to use
    min_super: int = 1  # Super replicas kept at any load (0: scale to zero, e.g. KEDA)
    super_throughput: float | None = None  # the Super's texts/s per replica on its own hardware

    def __post_init__(self) -> None:
        if not 0 < self.utilization <= 1:
            raise ValueError(f"utilization must be in (0, 1], got {self.utilization}")
        if self.router < 0 or self.super_ < 0:
            raise ValueError("prices must be >= 0")
        if self.min_super < 0:
            raise ValueError(f"min Super replicas must be >= 0, got {self.min_super}")
        if self.super_throughput is not None and not self.super_throughput > 0:
            raise ValueError(f"Super throughput must be > 0, got {self.super_throughput}")


def _replicas(rate: float, per_replica: float, utilization: float) -> int:
    return 0 if rate <= 0 else math.ceil(rate / (per_replica * utilization) - 1e-9)


def plan(load: float, costs: MeasuredCosts, prices: Prices, escalation: float | None = None) -> list[Layout]:
    """The three layouts at ``load`` texts/s (and escalation share, default the measured one)."""
    if not load >= 0:
        raise ValueError(f"load must be >= 0 texts/s, got {load}")
    f = costs.escalation if escalation is None else escalation
    if not 0 <= f <= 1:
        raise ValueError(f"escalation share must be in [0, 1], got {f}")
    t_super = prices.super_throughput or costs.super_
    u = prices.utilization
    r = max(1, _replicas(load, costs.router, u))
    s = max(prices.min_super, _replicas(f * load, t_super, u))
    one = max(1, _replicas(load, costs.elang_at(f), u))
    only = max(1, _replicas(load, t_super, u))
    return [
        Layout("E-LANG, two pools", r, s, r * prices.router + s * prices.super_),
        Layout("E-LANG, one pod", one, 0, one * prices.router),
        Layout(f"Super only ({costs.super_name})", 0, only, only * prices.super_),
    ]


def table(loads: list[float], costs: MeasuredCosts, prices: Prices, escalation: float | None = None) -> str:
    """A markdown table of replicas and cost per layout at each load."""
    head = (
        "| load (texts/s) | two pools: router + Super replicas | cost/h | one pod: replicas | cost/h "
        "| Super only: replicas | cost/h | two pools vs Super only |"
    )
    lines = [head, "|" + "---|" * 8]
    for load in loads:
        two, one, only = plan(load, costs, prices, escalation)
        saving = only.cost_per_hour / two.cost_per_hour if two.cost_per_hour else float("inf")
        lines.append(
            f"| {load:g} | {two.router_replicas} + {two.super_replicas} | {two.cost_per_hour:.2f} "
            f"| {one.router_replicas} | {one.cost_per_hour:.2f} | {only.super_replicas} | {only.cost_per_hour:.2f} "
            f"| {saving:.2f}x |"
        )
    return "\n".join(lines)


def plot(loads: list[float], costs: MeasuredCosts, prices: Prices, path: Path, escalation: float | None = None) -> Path:
    """Cost per hour against load for the three layouts (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = sorted({*loads, *[max(loads) * i / 200 for i in range(1, 201)]})
    curves = {}
    for load in grid:
        for layout in plan(load, costs, prices, escalation):
            curves.setdefault(layout.name, []).append(layout.cost_per_hour)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, ys in curves.items():
        ax.step(grid, ys, where="post", label=name)
    f = costs.escalation if escalation is None else escalation
    ax.set_xlabel("load (texts/s)")
    ax.set_ylabel("cost per hour (replica-hours x price)")
    ax.set_title(f"capacity at {f:.0%} escalated, utilization {prices.utilization:.0%}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
