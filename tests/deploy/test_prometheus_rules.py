"""promtool over deploy/prometheus: the configs, the alerting rules and their unit tests."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from .helpers import DEPLOY, PROMTOOL, exported_metric_names, needs_promtool, promql_metric_names

PROM = DEPLOY / "prometheus"
RULES = PROM / "anomalyd-rules.yml"


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert r.returncode == 0, f"promtool {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r


@needs_promtool
def test_promtool_check_config_host():
    out = promtool("check", "config", str(PROM / "prometheus.yml")).stdout
    assert "SUCCESS" in out and "1 rule files found" in out


@needs_promtool
def test_promtool_check_config_compose(tmp_path):
    # In compose the rules file is mounted beside the config: check them the same way.
    shutil.copy(DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / "anomalyd-rules.yml")
    promtool("check", "config", str(tmp_path / "prometheus.yml"))


@needs_promtool
def test_promtool_check_rules():
    out = promtool("check", "rules", str(RULES)).stdout
    assert "8 rules found" in out


@needs_promtool
def test_promtool_test_rules():
    promtool("test", "rules", "anomalyd-rules.test.yml", cwd=PROM)


def test_every_alert_has_firing_and_not_firing_unit_tests():
    rules = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert set(rules) == {
        "AnomalydDown",
        "AnomalydNotReady",
        "AnomalydDeadLetterRateHigh",
        "AnomalydRuleReloadFailed",
        "AnomalydAlertLatencyHigh",
        "AnomalydCheckpointStale",
        "AnomalydEventTimeBehind",
        "AnomalydConsumerLagHigh",
    }
    tests = yaml.safe_load((PROM / "anomalyd-rules.test.yml").read_text())["tests"]
    fired: dict[str, set] = {r: set() for r in rules}
    for t in tests:
        for case in t.get("alert_rule_test", []):
            fired[case["alertname"]].add(bool(case.get("exp_alerts")))
    assert all(v == {True, False} for v in fired.values()), fired


def test_rules_use_only_exported_metrics_and_carry_severity_and_summary():
    known = exported_metric_names() | {"up"}
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for r in g["rules"]:
            assert promql_metric_names(r["expr"]) <= known, (r["alert"], promql_metric_names(r["expr"]) - known)
            assert r["labels"]["severity"] in ("critical", "warning")
            assert {"summary", "description", "runbook"} <= set(r["annotations"])


def test_prometheusrule_for_the_operator_equals_the_rules_file():
    cr = yaml.safe_load((DEPLOY / "k8s" / "prometheusrule.yaml").read_text())
    assert cr["kind"] == "PrometheusRule" and cr["apiVersion"] == "monitoring.coreos.com/v1"
    assert cr["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], (
        "deploy/k8s/prometheusrule.yaml differs from deploy/prometheus/anomalyd-rules.yml"
    )


def test_scrape_configs_use_the_job_name_the_rules_select():
    for path, target in (
        (PROM / "prometheus.yml", "127.0.0.1:9108"),
        (DEPLOY / "compose" / "prometheus.yml", "anomalyd:9108"),
    ):
        cfg = yaml.safe_load(path.read_text())
        job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "anomalyd")
        assert job["static_configs"][0]["targets"] == [target]
        assert cfg["rule_files"] == ["anomalyd-rules.yml"]
