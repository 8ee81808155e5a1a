"""`anomalyd run` against a real Kafka-protocol broker (the embedded Tansu)."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from anomalyd.kafkatools.admin import produce_jsonl
from anomalyd.kafkatools.envelopes import envelope_records
from tests.cli.test_replay_cli import seed_stories
from tests.io.service import Service

pytestmark = pytest.mark.kafka


def replay(lines: list[str], rules: str = "rules") -> dict[str, list[dict]]:
    p = subprocess.run(
        [sys.executable, "-m", "anomalyd", "replay", "-", "--rules", rules],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, list[dict]] = {"alerts": [], "breaker-commands": [], "dead-letter": []}
    for ln in p.stdout.splitlines():
        rec = json.loads(ln)
        out[rec["topic"]].append(rec["value"])
    return out


def produce_lines(svc: Service, lines: list[str]) -> int:
    """Replay lines to Kafka; malformed lines go to `orders` as raw values."""
    recs = []
    for ln in lines:
        try:
            env = json.loads(ln)
            assert isinstance(env, dict) and env.get("topic") in svc.topics
            ((t, k, v),) = list(envelope_records([env], svc.topics))
        except (ValueError, AssertionError, TypeError, AttributeError):
            t, k, v = svc.topics["orders"], None, ln.encode()
        recs.append((t, k, v))
    return produce_jsonl(svc.bootstrap, recs)


def test_seed_stories_through_kafka_equal_replay(broker, tmp_path):
    lines = [ln for ln in seed_stories() if '"refunds"' not in ln]  # no refunds topic in Kafka
    ref = replay(lines)
    svc = Service(broker.bootstrap, tmp_path)
    n = produce_lines(svc, lines)
    svc.start()
    try:
        svc.wait_ready()
        svc.wait_processed(n, timeout=60)
        out = svc.outputs()
    finally:
        assert svc.stop() == 0
    assert sorted(a["alert_id"] for a in out["alerts"]) == sorted(a["alert_id"] for a in ref["alerts"])
    assert sorted(c["command_id"] + c["action"] for c in out["breaker-commands"]) == sorted(
        c["command_id"] + c["action"] for c in ref["breaker-commands"]
    )
    assert len(out["alerts"]) >= 10
    for a in out["alerts"]:
        assert a["_key"] == a["fingerprint"]
    for c in out["breaker-commands"]:
        assert c["_key"] == ",".join(f"{k}={v}" for k, v in c["scope"].items())
    # malformed lines became dead letters with where they came from
    dead = out["dead-letter"]
    assert Counter(d["reason_code"] for d in dead) == Counter(
        {"invalid_json": 1, "not_object": 1, "missing_field": 1, "invalid_field": 1}
    )
    assert all(
        d["source_topic"] in svc.topics.values() and d["offset"] is not None and d["partition"] is not None
        for d in dead
    )
    assert "anomalyd: stopped" in svc.log()


def test_malformed_records_of_every_kind_go_to_dead_letter_and_the_worker_keeps_going(broker, tmp_path):
    svc = Service(broker.bootstrap, tmp_path)
    t = svc.topics

    def good(i, a):
        return json.dumps({"event_id": f"ok-{i}", "ts": 1781712000000 + i, "sku": "S", "available": a}).encode()

    bad = [
        (t["inventory"], b"\xff\xfe\x00 binary"),
        (t["inventory"], b""),
        (t["inventory"], b"{"),
        (t["inventory"], b"[1,2]"),
        (t["inventory"], b'"str"'),
        (t["inventory"], b'{"event_id": "x"}'),
        (t["inventory"], b'{"event_id":"x","ts":1781712000000,"sku":"S","available":"5"}'),
        (t["inventory"], b'{"event_id":"x","ts":1781712000000,"sku":"S","available":1,"n":NaN}'),
        (
            t["orders"],
            b'{"event_id":"x","ts":"2026-01-01","order_id":"o","sku":"s","quantity":1,"unit_price":1,"status":"paid"}',
        ),
        (t["payments"], b"[" * 50_000),
        (t["complaints"], b"x" * 200_000),
    ]
    # Two days ahead of the wall clock: refused when read, with where it came
    # from, not held in the reorder buffer until the stream catches up with it.
    future = json.dumps(
        {"event_id": "fut", "ts": int(time.time() * 1000) + 2 * 86_400_000, "sku": "S", "available": 1}
    ).encode()
    bad.append((t["inventory"], future))
    recs = (
        [(t["inventory"], "S", good(0, 5))]
        + [(tp, "S" if v is future else None, v) for tp, v in bad]
        + [(t["inventory"], "S", good(1, -3))]
    )
    produce_jsonl(broker.bootstrap, recs)
    svc.start()
    try:
        svc.wait_ready()
        svc.wait_processed(len(recs), timeout=40)
        out = svc.outputs()
        assert svc.get("/healthz")[0] == 200
        _, metrics = svc.get("/metrics")
    finally:
        svc.stop()
    assert len(out["dead-letter"]) == len(bad)
    codes = Counter(d["reason_code"] for d in out["dead-letter"])
    assert codes == Counter(
        {"invalid_json": 5, "not_utf8": 1, "not_object": 2, "missing_field": 1, "invalid_field": 2, "future_ts": 1}
    )
    fut = next(d for d in out["dead-letter"] if d["reason_code"] == "future_ts")
    assert fut["original"] == future.decode() and fut["partition"] is not None and fut["offset"] is not None
    assert all(d["reason"] and "\n" not in d["reason"] and d["_key"] == d["source_topic"] for d in out["dead-letter"])
    assert [a["status"] for a in out["alerts"]] == ["firing"]  # the good record after the garbage still fired
    assert 'anomalyd_events_invalid_total{reason="invalid_json"} 5.0' in metrics


def test_metrics_and_health_endpoints(broker, tmp_path):
    svc = Service(broker.bootstrap, tmp_path)
    svc.start()
    try:
        svc.wait_ready()
        assert svc.get("/healthz") == (200, "ok\n")
        assert svc.get("/readyz") == (200, "ready\n")
        _, text = svc.get("/metrics")
    finally:
        svc.stop()
    for name in (
        "anomalyd_rules_loaded 15.0",
        "anomalyd_ready 1.0",
        "anomalyd_ruleset_info{version=",
        "anomalyd_event_to_alert_latency_seconds_bucket",
        'anomalyd_rule_groups{rule_id="negative-stock"}',
        "anomalyd_rule_reload_failures_total 0.0",
        "anomalyd_assigned_partitions 20.0",  # 4 each of the four event topics and operator-actions
    ):
        assert name in text, name
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stdout + lint.stderr


def test_hot_reload_keeps_old_rules_on_a_broken_edit_and_applies_a_good_one(broker, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree("rules", rules, ignore=shutil.ignore_patterns("tests"))
    svc = Service(broker.bootstrap, tmp_path, rules=rules)
    t = svc.topics

    def inv(i, a):
        return (
            t["inventory"],
            "S",
            json.dumps({"event_id": f"e{i}", "ts": 1781712000000 + i * 1000, "sku": f"S{i}", "available": a}).encode(),
        )

    svc.start()
    try:
        svc.wait_ready()
        (rules / "inventory.yaml").write_text((rules / "inventory.yaml").read_text().replace("value: 0", "value: zero"))
        svc.wait(lambda: svc.metric("anomalyd_rule_reload_failures_total") >= 1, 20, "a refused reload")
        produce_jsonl(broker.bootstrap, [inv(1, -1)])
        svc.wait_processed(1, 20)
        assert "inventory.yaml:9:12: op '<' needs a numeric field and a number value" in svc.log()
        # a good edit: stock below 10 now counts
        (rules / "inventory.yaml").write_text(
            (rules / "inventory.yaml").read_text().replace("value: zero", "value: 10")
        )
        svc.wait(lambda: svc.metric("anomalyd_rule_reloads_total") >= 1, 20, "a good reload")
        time.sleep(1)
        produce_jsonl(broker.bootstrap, [inv(2, 5)])
        svc.wait(lambda: len(svc.outputs(0.5)["alerts"]) >= 2, 20, "alert under the new rule")
        out = svc.outputs()
    finally:
        svc.stop()
    assert sorted((a["group"]["sku"], a["value"], a["threshold"]) for a in out["alerts"]) == [
        ("S1", -1, 0),
        ("S2", 5, 10),
    ]


def test_kill_9_ten_times_with_a_backlog_loses_no_alert(broker, tmp_path):
    sim = subprocess.run(
        [sys.executable, "-m", "anomalyd", "simulate", "--minutes", "140", "--seed", "21"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ref = replay(sim)
    assert len(ref["alerts"]) >= 20
    # rules across sources and over rules among them (their state lives in the snapshot too)
    assert {"unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident"} <= {
        a["rule_id"] for a in ref["alerts"]
    }
    # Checkpoints every 500 ms: a run waiting for one must not eat the backlog.
    svc = Service(broker.bootstrap, tmp_path, ANOMALYD_SESSION_TIMEOUT_MS="4000", ANOMALYD_CHECKPOINT_INTERVAL="500ms")
    n = produce_lines(svc, sim)
    rng = random.Random(4)
    progress = []
    at_start = []  # (this process's consumed counter, lifetime total) at each restart
    try:
        for i in range(10):
            svc.start()
            svc.wait_ready()
            at_start.append((svc.metric("anomalyd_events_consumed_total"), svc.processed()))
            # Kill mid-stream at a random point of what is left, so that all
            # ten land inside the backlog however fast the machine is.
            base = svc.processed()
            step = rng.randint(1000, max(1000, int(n - base) // (11 - i)))
            svc.wait(
                lambda base=base, step=step: svc.processed() >= min(n, base + step),
                90,
                "progress before the kill",
                every=0.05,
            )
            if i % 2:
                # Every other run lives until a checkpoint has saved that progress
                # (on a loaded machine a kill can otherwise always land inside the
                # first big release of buffered events, and no run keeps any work).
                t_prog = time.time()
                svc.wait(
                    lambda t_prog=t_prog: svc.metric("anomalyd_checkpoint_timestamp_seconds") > t_prog,
                    30,
                    "a checkpoint after the progress",
                    every=0.05,
                )
            progress.append(svc.processed())
            svc.kill(signal.SIGKILL)
        svc.start()
        svc.wait_ready()
        svc.wait_processed(n, timeout=120)
        time.sleep(1.5)
        out = svc.outputs()
    finally:
        svc.stop()
    assert len(progress) == 10
    # Prometheus counters start with each process; the lifetime total survives restarts.
    assert all(c <= life for c, life in at_start) and any(c < life for c, life in at_start[1:]), at_start
    # The reorder buffer stays bounded (flow control pauses partitions that run ahead).
    buffered = [int(m) for m in re.findall(r"(\d+) buffered", svc.log())]
    assert buffered and max(buffered) <= 80_000, buffered
    # The harness's own check: most kills landed inside the backlog. Since
    # issue 15's worker is faster, the last kills can find it all read.
    assert sum(1 for p in progress if 0 < p < n) >= 6, f"kills did not land mid-stream: {progress} of {n}"
    got = {a["alert_id"] for a in out["alerts"]}
    missing = {a["alert_id"] for a in ref["alerts"]} - got
    assert not missing, f"{len(missing)} alerts of the replay never appeared"
    assert got == {a["alert_id"] for a in ref["alerts"]}, "alerts that replay does not give"
    # duplicates are allowed (at least once) but carry the same ids: one id per scope episode
    opens = Counter((c["_key"], c["command_id"]) for c in out["breaker-commands"] if c["action"] == "open")
    ref_opens = {
        (",".join(f"{k}={v}" for k, v in c["scope"].items()), c["command_id"])
        for c in ref["breaker-commands"]
        if c["action"] == "open"
    }
    assert set(opens) == ref_opens


def test_shadow_rules_run_live_but_only_write_to_the_shadow_topic(broker, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree("rules", rules, ignore=shutil.ignore_patterns("tests"))
    (rules / "candidate.yaml").write_text(
        (rules / "inventory.yaml")
        .read_text()
        .replace("id: negative-stock", "id: low-stock-candidate")
        .replace("value: 0", "value: 10")
        .replace("    severity: P1", "    severity: P1\n    mode: shadow")
    )
    svc = Service(broker.bootstrap, tmp_path, rules=rules)

    def ev(i, a):
        return (
            svc.topics["inventory"],
            "S",
            json.dumps({"event_id": f"e{i}", "ts": 1781712000000 + i, "sku": "S", "available": a}).encode(),
        )

    produce_jsonl(broker.bootstrap, [ev(1, 5)])  # below 10, not below 0
    svc.start()
    try:
        svc.wait_ready()
        svc.wait_processed(1, 30)
        svc.wait(lambda: svc.outputs(0.5)["alerts-shadow"], 20, "the shadow alert")
        out = svc.outputs()
        _, metrics = svc.get("/metrics")
    finally:
        svc.stop()
    assert [(a["rule_id"], a["status"], a["shadow"]) for a in out["alerts-shadow"]] == [
        ("low-stock-candidate", "firing", True)
    ]
    assert out["alerts"] == [] and out["breaker-commands"] == []  # no live alert, and never a command
    assert (
        'anomalyd_alerts_total{mode="shadow",rule_id="low-stock-candidate",severity="P1",status="firing"} 1.0'
        in metrics
    )


def test_a_partition_holding_the_watermark_that_is_not_fetched_is_resumed(broker, caplog):
    """Self-heal: if the client stops fetching a partition (here: paused
    behind the worker's back) while it fetches others, the worker notices
    (after 10 s; 3 s here), says which partition, and resumes it."""
    import asyncio
    import logging
    import tempfile
    import uuid

    from aiokafka import TopicPartition

    from anomalyd.engine.engine import Engine
    from anomalyd.engine.rules.loader import load_rules
    from anomalyd.io.direct import direct_worker
    from anomalyd.io.snapshots import SnapshotFile
    from anomalyd.kafkatools.admin import ensure_topics

    tag = uuid.uuid4().hex[:6]
    ins = {f"{s}-{tag}": s for s in ("orders", "inventory", "payments", "complaints")}
    outs = {k: f"{k}-{tag}" for k in ("alerts", "alerts-shadow", "breaker-commands", "dead-letter")}
    ensure_topics(broker.bootstrap, {t: 1 for t in [*ins, *outs.values()]})
    inv = f"inventory-{tag}"

    def ev(topic, i, **kw):
        return (topic, None, json.dumps({"event_id": f"{topic}{i}", "ts": 1781712000000 + i * 1000, **kw}).encode())

    async def scenario() -> tuple[int, int]:
        with tempfile.TemporaryDirectory() as d:
            rt = direct_worker(
                bootstrap=broker.bootstrap,
                engine=Engine(load_rules("rules")),
                input_topics=ins,
                output_topics=outs,
                group_id=f"g-{tag}",
                snapshots=SnapshotFile(d, "s"),
                log_alerts=False,
                partition_idle_s=5,
            )
            stage = rt.stage("direct")
            w = stage.strategy
            w.fetch_stall_s = 3.0  # before the idle timeout: a stale partition would look idle, its events never come
            task = asyncio.create_task(rt.run())
            while not rt.ready:
                await asyncio.sleep(0.1)
            # every topic moves to t=1 s, so inventory (at t=1 s) holds the watermark next
            produce_jsonl(
                broker.bootstrap,
                [
                    ev(t, 1, **f)
                    for t, f in (
                        (f"orders-{tag}", dict(order_id="o", sku="S", quantity=1, unit_price=1.0, status="paid")),
                        (inv, dict(sku="S", available=5)),
                        (f"payments-{tag}", dict(payment_id="p", order_id="o", amount=1.0, status="succeeded")),
                        (f"complaints-{tag}", dict(ticket_id="t", category="c")),
                    )
                ],
            )
            while sum(w.engine.consumed.values()) < 4:
                await asyncio.sleep(0.1)
            stage.consumer.pause(TopicPartition(inv, 0))  # the client stops fetching it; the worker is not told
            produce_jsonl(broker.bootstrap, [ev(inv, i, sku="S", available=5) for i in range(2, 5)])
            t0 = time.monotonic()
            i = 2
            while w.engine.consumed["inventory"] < 4 and time.monotonic() - t0 < 40:
                i += 1  # traffic elsewhere goes on
                produce_jsonl(
                    broker.bootstrap,
                    [ev(f"orders-{tag}", i, order_id="o", sku="S", quantity=1, unit_price=1.0, status="paid")],
                )
                await asyncio.sleep(0.5)
            took = time.monotonic() - t0
            rt.stopping.set()
            await task
            return w.engine.consumed["inventory"], took

    with caplog.at_level(logging.WARNING, logger="anomalyd.worker"):
        got, took = asyncio.run(scenario())
    assert got == 4, "the held partition was never fetched again"
    assert 3 <= took < 40
    assert any("not fetched for" in r.getMessage() and inv in r.getMessage() for r in caplog.records)
