"""Routing statistics over classified texts: routes, energies, latencies, throughput, accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from elang.contract import STAGES

ENERGY_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
LATENCY_QUANTILES = (50, 95, 99)


def percentiles(values: Sequence[float], qs: Sequence[float] = LATENCY_QUANTILES) -> dict[float, float]:
    """Percentiles (0-100) of ``values`` with linear interpolation; NaN for no values."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {q: float("nan") for q in qs}
    return {q: float(v) for q, v in zip(qs, np.percentile(arr, qs))}


@dataclass
class RouteStats:
    """Counts, latency and accuracy of the texts one stage answered."""

    count: int
    latency_ms: dict[float, float]
    accuracy: float | None


@dataclass
class RoutingStats:
    """What an operator wants to know after a run."""

    count: int
    failed: int
    wall_s: float
    route_counts: dict[int, int]
    energy_quantiles: dict[float, float]
    latency_ms: dict[float, float]
    per_route: dict[int, RouteStats] = field(default_factory=dict)
    accuracy: float | None = None
    stage_names: tuple[str, ...] = STAGES
    # failed texts by why: overloaded / deadline / cancelled / unreachable / invalid / error
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    exit_layers: tuple[int, ...] = ()  # multi-exit routers: the encoder layer of each route
    # answered texts the answering stage cut at its max length (None: the server does not report it)
    truncated: int | None = None

    @property
    def mean_exit_layer(self) -> float | None:
        """Multi-exit routers: the average encoder layer that answered (None for a pair)."""
        if not self.exit_layers or not self.answered:
            return None
        return sum(self.exit_layers[r] * n for r, n in self.route_counts.items()) / self.answered

    @property
    def answered(self) -> int:
        return self.count - self.failed

    @property
    def super_fraction(self) -> float:
        """Share of answered texts escalated past the first stage."""
        if self.answered == 0:
            return float("nan")
        return sum(n for r, n in self.route_counts.items() if r >= 1) / self.answered

    @property
    def throughput(self) -> float:
        """Answered texts per second of wall time."""
        return self.answered / self.wall_s if self.wall_s > 0 else float("nan")

    @classmethod
    def compute(
        cls,
        routes: Sequence[int],
        energies: Sequence[float],
        latencies_s: Sequence[float],
        wall_s: float,
        correct: Sequence[bool] | None = None,
        failed: int = 0,
        stage_names: tuple[str, ...] = STAGES,
        failures_by_kind: dict[str, int] | None = None,
        exit_layers: tuple[int, ...] = (),
        truncated: int | None = None,
    ) -> RoutingStats:
        """Statistics of answered texts (parallel sequences) plus a count of failed ones."""
        r = np.asarray(routes, dtype=np.int64)
        lat = np.asarray(latencies_s, dtype=np.float64) * 1e3
        ok = None if correct is None else np.asarray(correct, dtype=bool)
        if not (len(r) == len(lat) == len(energies)) or (ok is not None and len(ok) != len(r)):
            raise ValueError("routes, energies, latencies and correct must have the same length")
        e = np.asarray(energies, dtype=np.float64)
        per_route = {}
        for route in sorted(set(r.tolist())):
            m = r == route
            per_route[route] = RouteStats(
                count=int(m.sum()),
                latency_ms=percentiles(lat[m]),
                accuracy=None if ok is None else float(ok[m].mean()),
            )
        return cls(
            count=len(r) + failed,
            failed=failed,
            wall_s=wall_s,
            route_counts={k: v.count for k, v in per_route.items()},
            energy_quantiles=dict(zip(ENERGY_QUANTILES, np.quantile(e, ENERGY_QUANTILES).tolist()))
            if e.size
            else {q: float("nan") for q in ENERGY_QUANTILES},
            latency_ms=percentiles(lat),
            per_route=per_route,
            accuracy=None if ok is None or ok.size == 0 else float(ok.mean()),
            stage_names=stage_names,
            failures_by_kind=dict(failures_by_kind or ({"error": failed} if failed else {})),
            exit_layers=tuple(exit_layers),
            truncated=truncated,
        )

    def stage_name(self, route: int) -> str:
        return self.stage_names[route] if 0 <= route < len(self.stage_names) else f"stage{route}"

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "answered": self.answered,
            "failed": self.failed,
            "failed_by_kind": dict(self.failures_by_kind),
            "super_fraction": self.super_fraction,
            "mean_exit_layer": self.mean_exit_layer,
            "throughput_per_s": self.throughput,
            "wall_s": self.wall_s,
            "accuracy": self.accuracy,
            "truncated": self.truncated,
            "energy_quantiles": {str(q): v for q, v in self.energy_quantiles.items()},
            "latency_ms": {f"p{q}": v for q, v in self.latency_ms.items()},
            "routes": {
                self.stage_name(k): {
                    "count": v.count,
                    "accuracy": v.accuracy,
                    "latency_ms": {f"p{q}": x for q, x in v.latency_ms.items()},
                }
                for k, v in self.per_route.items()
            },
        }

    def format_table(self) -> str:
        """A plain-text table for terminals and logs."""

        def f(x: float | None, fmt: str = "{:.2f}") -> str:
            return "-" if x is None or x != x else fmt.format(x)

        lines = [
            f"texts          {self.count} ({self.answered} answered, {self.failed} failed"
            + (": " + ", ".join(f"{n} {k}" for k, n in sorted(self.failures_by_kind.items())) if self.failed else "")
            + ")",
            f"super fraction {f(self.super_fraction, '{:.1%}')}"
            + (
                ""
                if self.mean_exit_layer is None
                else f"   (past the first exit; mean exit layer {self.mean_exit_layer:.2f})"
            ),
            f"throughput     {f(self.throughput, '{:.1f}')} texts/s over {self.wall_s:.2f} s",
            f"accuracy       {f(self.accuracy, '{:.2%}')}",
            *(
                [f"truncated      {self.truncated} texts cut at the answering model's max length"]
                if self.truncated
                else []
            ),
            "energy         "
            + "  ".join(f"q{int(q * 100)}={f(v, '{:.3f}')}" for q, v in self.energy_quantiles.items()),
            "",
            f"{'route':<10}{'texts':>8}{'share':>9}{'acc':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}",
        ]
        rows = [("all", self.answered, self.latency_ms, self.accuracy)] + [
            (self.stage_name(k), v.count, v.latency_ms, v.accuracy) for k, v in self.per_route.items()
        ]
        for name, n, lat, acc in rows:
            share = n / self.answered if self.answered else float("nan")
            lines.append(
                f"{name:<10}{n:>8}{f(share, '{:.1%}'):>9}{f(acc, '{:.2%}'):>9}"
                f"{f(lat[50]):>10}{f(lat[95]):>10}{f(lat[99]):>10}"
            )
        return "\n".join(lines)
