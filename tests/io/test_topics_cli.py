"""`anomalyd topics create` against the real broker."""

import os
import subprocess
import sys
import uuid

import pytest

from anomalyd.kafkatools.admin import topic_partitions

pytestmark = pytest.mark.kafka


def test_topics_create_makes_every_topic_with_the_partitions_asked_and_is_idempotent(broker):
    tag = uuid.uuid4().hex[:6]
    names = {
        k: f"{k}-{tag}"
        for k in (
            "ORDERS",
            "INVENTORY",
            "PAYMENTS",
            "COMPLAINTS",
            "OPERATOR_ACTIONS",
            "ALERTS",
            "ALERTS_SHADOW",
            "COMMANDS",
            "DEAD_LETTER",
        )
    }
    env = {**os.environ, **{f"ANOMALYD_TOPIC_{k}": v for k, v in names.items()}}
    cmd = [sys.executable, "-m", "anomalyd", "topics", "create", "--bootstrap", broker.bootstrap, "--partitions", "3"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("(created)") == 9
    assert topic_partitions(broker.bootstrap, names.values()) == {n: 3 for n in names.values()}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "(created)" not in again.stdout


def test_topics_create_without_a_broker_is_a_usage_error():
    env = {k: v for k, v in os.environ.items() if k != "ANOMALYD_BOOTSTRAP_SERVERS"}
    p = subprocess.run([sys.executable, "-m", "anomalyd", "topics", "create"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "needs --bootstrap" in p.stderr
