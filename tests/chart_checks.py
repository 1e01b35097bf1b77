"""What the Helm chart's Grafana dashboard queries (shared by the chart test and the live /metrics test)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "elang-serve" / "dashboards" / "elang-router.json"


def dashboard_metric_names() -> set[str]:
    """Metric families the dashboard's queries name (histogram series folded into their family)."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return {re.sub(r"_(bucket|sum|count)$", "", n) for e in exprs for n in re.findall(r"\belang_[a-z_]+", e)}
