"""`anomalyd backtest kafka://...` reads history straight from the input topics."""

import json
import subprocess
import sys
import time

import pytest

from anomalyd.kafkatools.admin import produce_jsonl
from anomalyd.kafkatools.envelopes import envelope_records
from tests.io.service import Service

pytestmark = pytest.mark.kafka


def test_backtest_from_kafka_equals_backtest_from_the_file_and_honours_since(broker, tmp_path):
    svc = Service(broker.bootstrap, tmp_path)  # only for its unique topic names
    sim = subprocess.run(
        [sys.executable, "-m", "anomalyd", "simulate", "--minutes", "40", "--seed", "9"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "sim.jsonl").write_text(sim)
    envs = [json.loads(ln) for ln in sim.splitlines()]
    old = [{"topic": "inventory", "value": {"event_id": "old", "ts": 1781712000000, "sku": "OLD", "available": -9}}]
    produce_jsonl(broker.bootstrap, envelope_records(old, svc.topics))
    time.sleep(0.2)
    since = int(time.time() * 1000)
    time.sleep(0.05)
    produce_jsonl(broker.bootstrap, envelope_records(envs, svc.topics))
    env = svc.env  # the unique topic names

    def run(src):
        return subprocess.run(
            [sys.executable, "-m", "anomalyd", "backtest", src, "--rules", "rules", "--json"],
            capture_output=True,
            text=True,
            env=env,
        )

    from_file = run(str(tmp_path / "sim.jsonl"))
    from_kafka = run(f"kafka://{broker.bootstrap}?since={since}")
    assert from_file.returncode == 0 and from_kafka.returncode == 0, from_kafka.stderr

    def per_rule(out):
        return {rid: (r["fired"], r["resolved"]) for rid, r in json.loads(out)["current"]["rules"].items()}

    assert per_rule(from_kafka.stdout) == per_rule(from_file.stdout)
    assert sum(f for f, _ in per_rule(from_kafka.stdout).values()) >= 2
    assert f"read {len(envs)} records" in from_kafka.stderr  # the old record is before `since`
    everything = run(f"kafka://{broker.bootstrap}")
    assert f"read {len(envs) + 1} records" in everything.stderr
