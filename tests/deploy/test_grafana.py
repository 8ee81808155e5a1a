"""deploy/grafana: the dashboard JSON and the provisioning files."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from .helpers import DEPLOY, PROMTOOL, exported_metric_names, grafana_to_promql, needs_promtool, promql_metric_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "anomalyd-dashboard.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_exprs(d: dict) -> list[tuple[str, str]]:
    out = []
    for p in d["panels"]:
        for sub in [p, *p.get("panels", [])]:
            for t in sub.get("targets", []):
                out.append((sub["title"], t["expr"]))
    return out


def variable_metrics(d: dict) -> set[str]:
    names = set()
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((\w+)(\{[^}]*\})?,\s*\w+\)", q)
            assert m, q
            names.add(m.group(1))
    return names


def test_dashboard_parses_and_is_well_formed():
    d = dashboard()
    assert d["uid"] == "anomalyd-overview" and d["title"] == "anomalyd"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    names = [v["name"] for v in d["templating"]["list"]]
    assert names[:1] == ["datasource"] and {"job", "instance"} <= set(names)
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert 'job=~"$job"' in t["expr"] and 'instance=~"$instance"' in t["expr"], (p["title"], t["expr"])
    # panels do not overlap on the 24-column grid
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))


def test_dashboard_covers_what_the_issue_asks_for():
    used = {m for _, e in panel_exprs(dashboard()) for m in promql_metric_names(e)}
    for metric in (
        "anomalyd_events_consumed_total",
        "anomalyd_alerts_total",
        "anomalyd_breakers_open",
        "anomalyd_event_to_alert_latency_seconds_bucket",
        "anomalyd_events_invalid_total",
        "anomalyd_rule_reload_failures_total",
        "anomalyd_stream_time_seconds",
    ):
        assert metric in used, metric
    exprs = " ".join(e for _, e in panel_exprs(dashboard()))
    assert "sum by (topic)" in exprs and "sum by (reason)" in exprs and "sum by (rule_id, severity" in exprs
    assert all(f"histogram_quantile({q}" in exprs for q in ("0.5", "0.9", "0.99"))


def test_every_expr_uses_only_metrics_anomalyd_exports():
    known = exported_metric_names() | {"up"}
    d = dashboard()
    for title, expr in panel_exprs(d):
        used = promql_metric_names(expr)
        assert used, (title, expr)
        assert used <= known, f"{title}: unknown metric(s) {used - known} in {expr}"
    assert variable_metrics(d) <= known


@needs_promtool
def test_every_expr_is_valid_promql(tmp_path):
    # promtool parses each expression (Grafana variables substituted) as a recording rule.
    rules = [
        {"record": f"dashboard:expr{i}", "expr": grafana_to_promql(e)}
        for i, (_, e) in enumerate(panel_exprs(dashboard()))
    ]
    f = tmp_path / "dashboard-exprs.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (src,) = ds["datasources"]
    assert src["type"] == "prometheus" and src["url"] == "http://prometheus:9090" and ds["apiVersion"] == 1
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "anomalyd.yaml").read_text())
    (p,) = prov["providers"]
    assert p["type"] == "file" and prov["apiVersion"] == 1
    # compose mounts the dashboard where the provider looks
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = next(m.split(":")[1] for m in mounts if m.split(":")[0].endswith("anomalyd-dashboard.json"))
    assert target.rsplit("/", 1)[0] == p["options"]["path"]
