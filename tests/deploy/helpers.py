"""Shared helpers for the deployment-artifact tests (deploy/, Dockerfile)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.io.service import free_port  # noqa: F401  (one helper for every test)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def which(name: str) -> str | None:
    """A tool on PATH or next to this interpreter (the venv's bin/)."""
    return shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))


PROMTOOL = which("promtool")
PROMETHEUS = which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install prometheus")


def exported_metric_names() -> set[str]:
    """Every series name anomalyd/surfaces/metrics.py can expose, read from its source:
    counters get _total (and _created), histograms _bucket/_sum/_count (and _created)."""
    src = (ROOT / "anomalyd" / "surfaces" / "metrics.py").read_text()
    names: set[str] = set()
    for kind, name in re.findall(r'\b(CounterMetricFamily|GaugeMetricFamily|Counter|Gauge|Histogram)\(\s*"(\w+)"', src):
        if kind in ("Counter", "CounterMetricFamily"):
            names |= {name + "_total", name + "_created"}
        elif kind == "Histogram":
            names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(name)
    assert len(names) > 20, "metrics.py changed shape: update exported_metric_names()"
    return names


_FUNCS_AND_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "Inf",
    "NaN",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names used in a PromQL expression (good enough for our own exprs):
    identifiers that are not functions (followed by '('), keywords, label
    matchers, label lists of by/on/..., ranges or Grafana $variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    out = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)", e):
        name = m.group(1)
        if re.match(r"\s*\(", e[m.end() :]) or name in _FUNCS_AND_KEYWORDS:
            continue
        out.add(name)
    return out


GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$job": ".*",
    "$instance": ".*",
    "${datasource}": "prometheus",
}


def grafana_to_promql(expr: str) -> str:
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr
