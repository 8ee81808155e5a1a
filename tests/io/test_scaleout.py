"""Scale-out mode (ANOMALYD_SHARDS): several workers share the input
partitions and the groups, and say together what `anomalyd replay` says."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from anomalyd.kafkatools.admin import produce_jsonl
from tests.cli.test_replay_cli import seed_stories
from tests.io.service import Service
from tests.io.test_worker import produce_lines, replay

pytestmark = pytest.mark.kafka


def sharded(broker, tmp_path, shards: int = 4) -> Service:
    svc = Service(broker.bootstrap, tmp_path, ANOMALYD_SHARDS=str(shards))
    tag = svc.tag
    svc.env.update(ANOMALYD_TOPIC_REPARTITION=f"routed-{tag}", ANOMALYD_TOPIC_CHECKPOINT_STORE=f"state-{tag}")
    return svc


def ids(out: dict) -> tuple[list, list]:
    return (
        sorted(a["alert_id"] for a in out["alerts"]),
        sorted(c["command_id"] + c["action"] for c in out["breaker-commands"]),
    )


def wait_outputs(
    svc: Service, want: tuple[list, list], workers: list[Service], timeout: float, ref: dict | None = None
) -> dict:
    """Poll the output topics until every expected id is there. Gives up
    after `timeout` s without a new output record (a slow machine is slow,
    not wrong)."""
    last, seen = time.time(), -1
    while True:
        out = svc.outputs(idle_s=0.5)
        got = ids(out)
        if set(got[0]) >= set(want[0]) and set(got[1]) >= set(want[1]):
            return out
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{w.log()[-3000:]}")
        n = sum(len(v) for v in out.values())
        if n != seen:
            last, seen = time.time(), n
        if time.time() - last > timeout:
            missing = set(want[0]) - set(got[0])
            what = [
                (a["rule_id"], a["group"], a["status"], a["ts"])
                for a in (ref or {}).get("alerts", [])
                if a["alert_id"] in missing
            ]
            raise AssertionError(
                f"missing {len(missing)} alerts of {len(want[0])}: {what}\n"
                + "\n".join(w.log()[-2500:] for w in workers)
            )
        time.sleep(1)


def with_future_events(lines: list[str]) -> list[str]:
    """Copies of a few events two days ahead of the wall clock, mid-stream:
    refused as future_ts, once (by the router that reads them)."""
    out, n = [], 0
    ahead = int(time.time() * 1000) + 2 * 86_400_000
    for i, ln in enumerate(lines):
        out.append(ln)
        if i > len(lines) // 2 and n < 3 and ln.startswith("{") and ('"payments"' in ln or '"orders"' in ln):
            d = json.loads(ln)
            d["value"]["ts"] = ahead
            d["value"]["event_id"] = f"future-{n}"
            out.append(json.dumps(d))
            n += 1
    return out


@contextlib.contextmanager
def one_worker(svc: Service, lines: list[str]):
    """`lines` on the input topics, then `svc` started, ready and through
    all of them; it must stop cleanly (exit 0) afterwards."""
    n = produce_lines(svc, lines)
    svc.start()
    try:
        svc.wait_ready()
        svc.wait_processed(n, timeout=60)
        yield svc
    finally:
        assert svc.stop() == 0


@contextlib.contextmanager
def two_workers(a: Service, lines: list[str]):
    """`lines` on the input topics, then `a` and a twin worker started and
    ready; both must stop cleanly (exit 0) afterwards."""
    b = a.twin()
    produce_lines(a, lines)
    a.start()
    b.start()
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_two_workers_share_the_work_and_equal_replay(broker, tmp_path):
    lines = with_future_events([ln for ln in seed_stories() if '"refunds"' not in ln])
    ref = replay(lines)
    assert sum(d["reason_code"] == "future_ts" for d in ref["dead-letter"]) == 3
    with two_workers(sharded(broker, tmp_path), lines) as (a, b):
        out = wait_outputs(a, ids(ref), [a, b], timeout=60, ref=ref)
        time.sleep(2)  # anything extra would show now
        out = a.outputs()
        shards = [a.metric("anomalyd_assigned_partitions"), b.metric("anomalyd_assigned_partitions")]
    assert set(ids(out)[0]) == set(ids(ref)[0])
    assert set(ids(out)[1]) == set(ids(ref)[1])
    assert sorted(shards) == [2, 2]  # four shards, two each
    # refused records are dead-lettered once, by the router that read them
    assert Counter(d["reason_code"] for d in out["dead-letter"]) == Counter(
        d["reason_code"] for d in ref["dead-letter"]
    )
    for rec in out["alerts"]:
        assert rec["_key"] == rec["fingerprint"]


def test_killing_one_worker_moves_its_shards_to_the_other_without_losing_alerts(broker, tmp_path):
    sim = subprocess.run(
        [sys.executable, "-m", "anomalyd", "simulate", "--minutes", "70", "--seed", "21"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ref = replay(sim)
    assert len(ref["alerts"]) >= 10
    a = sharded(broker, tmp_path)
    a.env["ANOMALYD_SESSION_TIMEOUT_MS"] = "4000"
    b = a.twin()
    n = produce_lines(a, sim)

    def routed():
        return a.processed() + b.processed()  # records each router took, this process

    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        a.wait(lambda: routed() >= n // 4, 120, "a quarter of the backlog")
        b.kill(signal.SIGKILL)  # mid-stream: its shards and input partitions go to `a`
        killed_at = a.processed()
        a.wait(lambda: a.metric("anomalyd_assigned_partitions") == 4, 60, "a takes over every shard")
        a.wait(lambda: a.processed() > killed_at + 2000, 120, "a routing b's partitions too")
        b.start()  # and back: shards move again, each restored from the state topic
        b.wait_ready()
        out = wait_outputs(a, ids(ref), [a, b], timeout=60, ref=ref)
        time.sleep(2)
        out = a.outputs()
    finally:
        a.stop()
        b.stop()
    assert "shard" in a.log() and "restored" in a.log() + b.log()
    got = ids(out)
    assert set(got[0]) == set(ids(ref)[0]), "alerts that replay does not give"
    opens = {(c["_key"], c["command_id"]) for c in out["breaker-commands"] if c["action"] == "open"}
    ref_opens = {
        (",".join(f"{k}={v}" for k, v in c["scope"].items()), c["command_id"])
        for c in ref["breaker-commands"]
        if c["action"] == "open"
    }
    assert opens == ref_opens


def test_scale_out_worker_hot_reloads_counts_and_passes_promtool(broker, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree("rules", rules, ignore=shutil.ignore_patterns("tests"))
    svc = sharded(broker, tmp_path)
    svc.rules = rules
    svc.env["ANOMALYD_RULES_DIR"] = str(rules)
    t = svc.topics

    def inv(i, a):
        return (
            t["inventory"],
            f"S{i}",
            json.dumps({"event_id": f"e{i}", "ts": 1781712000000 + i * 1000, "sku": f"S{i}", "available": a}).encode(),
        )

    svc.start()
    try:
        svc.wait_ready()
        produce_jsonl(broker.bootstrap, [inv(1, -1), (t["inventory"], None, b"{not json")])
        svc.wait(lambda: len(svc.outputs(0.5)["alerts"]) >= 1, 30, "the first alert")
        (rules / "inventory.yaml").write_text((rules / "inventory.yaml").read_text().replace("value: 0", "value: 10"))
        svc.wait(lambda: svc.metric("anomalyd_rule_reloads_total") >= 1, 20, "a good reload")
        time.sleep(1)
        produce_jsonl(broker.bootstrap, [inv(2, 5)])  # below 10: fires only under the new rule
        svc.wait(lambda: len(svc.outputs(0.5)["alerts"]) >= 2, 30, "alert under the new rule")
        out = svc.outputs()
        _, text = svc.get("/metrics")
    finally:
        assert svc.stop() == 0
    assert sorted((a["group"]["sku"], a["value"], a["threshold"]) for a in out["alerts"]) == [
        ("S1", -1, 0),
        ("S2", 5, 10),
    ]
    assert [d["reason_code"] for d in out["dead-letter"]] == ["invalid_json"]
    for line in (
        f'anomalyd_events_consumed_total{{topic="{t["inventory"]}"}} 2.0',
        'anomalyd_events_invalid_total{reason="invalid_json"} 1.0',
        'anomalyd_alerts_total{mode="live",rule_id="negative-stock",severity="P1",status="firing"} ',
        "anomalyd_assigned_partitions 4.0",
        "anomalyd_ready 1.0",
    ):
        assert line in text, line
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint.stdout + lint.stderr
