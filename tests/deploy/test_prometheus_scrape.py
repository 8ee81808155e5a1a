"""A real Prometheus (Debian's `prometheus` binary) scraping a real
`anomalyd run` (embedded broker), with the alerting rules loaded: the series
arrive, the rules evaluate cleanly, and every dashboard query runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from .helpers import DEPLOY, PROMETHEUS, ROOT, free_port, grafana_to_promql, needs_prometheus

pytestmark = [pytest.mark.kafka, needs_prometheus]


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_for(cond, timeout: float, what: str, procs=(), logs=()):
    end = time.time() + timeout
    while time.time() < end:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(
                    f"{p.args[0]} exited ({p.returncode}) while waiting for {what}:\n"
                    + "\n".join(lg.read_text()[-2000:] for lg in logs)
                )
        v = cond()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(lg.read_text()[-2000:] for lg in logs))


def stop(p: subprocess.Popen | None) -> None:
    if p is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def test_prometheus_scrapes_anomalyd_and_evaluates_the_rules(tmp_path):
    mport, kport, pport = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYD_")}
    env.update(
        ANOMALYD_METRICS_PORT=str(mport),
        ANOMALYD_EMBEDDED_PORT=str(kport),
        ANOMALYD_STATE_DIR=str(tmp_path / "state"),
        ANOMALYD_RULES_DIR=str(ROOT / "rules"),
        ANOMALYD_CHECKPOINT_INTERVAL="1s",
        ANOMALYD_LOG_ALERTS="false",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    shutil.copy(DEPLOY / "prometheus" / "anomalyd-rules.yml", tmp_path / "anomalyd-rules.yml")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["anomalyd-rules.yml"],
                "scrape_configs": [{"job_name": "anomalyd", "static_configs": [{"targets": [f"127.0.0.1:{mport}"]}]}],
            }
        )
    )
    alog, plog = tmp_path / "anomalyd.log", tmp_path / "prometheus.log"
    anomalyd = prom = None
    api = f"http://127.0.0.1:{pport}/api/v1"

    def query(q: str) -> list:
        r = get_json(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
        assert r is None or r["status"] == "success", r
        return r["data"]["result"] if r else []

    try:
        anomalyd = subprocess.Popen(
            [sys.executable, "-m", "anomalyd", "run"],
            env=env,
            cwd=tmp_path,
            stdout=open(alog, "w"),
            stderr=subprocess.STDOUT,
        )
        prom = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{pport}",
                "--log.level=warn",
            ],
            cwd=tmp_path,
            stdout=open(plog, "w"),
            stderr=subprocess.STDOUT,
        )
        procs, logs = (anomalyd, prom), (alog, plog)
        wait_for(lambda: http_status(f"http://127.0.0.1:{mport}/readyz") == 200, 30, "anomalyd /readyz", procs, logs)

        # A minute of traffic ending now, one oversold SKU (an alert) and two malformed records.
        from anomalyd.kafkatools.admin import produce_jsonl
        from anomalyd.kafkatools.envelopes import produce_envelopes
        from anomalyd.simulate import generate

        now_ms = int(time.time() * 1000)
        events = list(generate(seed=3, start=now_ms - 60_000, minutes=1, anomalies=[]))
        events.append(
            {
                "topic": "inventory",
                "value": {
                    "event_id": "oversold-1",
                    "ts": now_ms,
                    "sku": "SKU-X",
                    "available": -3,
                    "warehouse": "WH-NORTH",
                },
            }
        )
        produce_envelopes(f"127.0.0.1:{kport}", events)
        produce_jsonl(f"127.0.0.1:{kport}", [("orders", None, b"not json"), ("payments", None, b"[1, 2]")])

        # anomalyd's series, through Prometheus
        res = wait_for(
            lambda: query('anomalyd_rules_loaded{job="anomalyd"}'),
            20,
            "anomalyd_rules_loaded in Prometheus",
            procs,
            logs,
        )
        assert float(res[0]["value"][1]) == 15
        assert float(query('up{job="anomalyd"}')[0]["value"][1]) == 1
        wait_for(lambda: query('anomalyd_ready{job="anomalyd"} == 1'), 10, "anomalyd_ready == 1", procs, logs)
        wait_for(
            lambda: query('sum(anomalyd_events_consumed_total{job="anomalyd"}) >= %d' % len(events)),
            20,
            "all events consumed",
            procs,
            logs,
        )
        reasons = wait_for(
            lambda: query("sum by (reason) (anomalyd_events_invalid_total) > 0"), 10, "dead letters", procs, logs
        )
        assert {r["metric"]["reason"] for r in reasons} == {"invalid_json", "not_object"}
        wait_for(
            lambda: query('anomalyd_alerts_total{rule_id="negative-stock", status="firing"} == 1'),
            10,
            "the negative-stock alert",
            procs,
            logs,
        )
        assert query('anomalyd_event_to_alert_latency_seconds_count{job="anomalyd"} >= 1')
        assert query('anomalyd_checkpoint_timestamp_seconds{job="anomalyd"} > 0')

        # every alerting rule evaluates without error; none of them fires on a healthy service
        def rules_evaluated():
            r = get_json(f"{api}/rules")
            rules = [x for g in (r or {"data": {"groups": []}})["data"]["groups"] for x in g["rules"]]
            return (
                rules
                if len(rules) == 8
                and all(
                    x.get("lastEvaluation", "").startswith("2") and not x["lastEvaluation"].startswith("0001")
                    for x in rules
                )
                else None
            )

        rules = wait_for(rules_evaluated, 10, "rule evaluation", procs, logs)
        assert all(x["health"] == "ok" for x in rules), [(x["name"], x.get("lastError")) for x in rules]
        # (AnomalydDown is pending from before Prometheus's first scrape, ~5s after its start: it must clear)
        health = {"AnomalydDown", "AnomalydNotReady", "AnomalydCheckpointStale", "AnomalydRuleReloadFailed"}

        def quiet():
            alerts = (get_json(f"{api}/alerts") or {"data": {"alerts": [{"labels": {"alertname": "?"}}]}})["data"][
                "alerts"
            ]
            return not {a["labels"]["alertname"] for a in alerts} & (health | {"?"})

        wait_for(quiet, 10, "the health alerts to be inactive", procs, logs)

        # every dashboard query runs against the live data
        dash = json.loads((DEPLOY / "grafana" / "anomalyd-dashboard.json").read_text())
        for p in dash["panels"]:
            for t in p.get("targets", []):
                r = get_json(f"{api}/query?" + urllib.parse.urlencode({"query": grafana_to_promql(t["expr"])}))
                assert r and r["status"] == "success", (p["title"], t["expr"], r)
        per_topic = grafana_to_promql(
            'sum by (topic) (rate(anomalyd_events_consumed_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))'
        )
        topics = wait_for(lambda: query(per_topic), 10, "the events-per-topic panel to have data", procs, logs)
        assert {r["metric"]["topic"] for r in topics} == {
            "orders",
            "inventory",
            "payments",
            "complaints",
            "operator-actions",
        }
    finally:
        stop(prom)
        stop(anomalyd)
    assert anomalyd.returncode == 0, alog.read_text()[-3000:]
