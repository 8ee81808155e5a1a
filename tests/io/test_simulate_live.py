"""`anomalyd simulate --to-kafka --live`: live traffic on the real embedded
broker, each event sent once the wall clock reaches its ts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from anomalyd.kafkatools.admin import consume_all, ensure_topics

pytestmark = pytest.mark.kafka
SOURCES = ("orders", "inventory", "payments", "complaints")


def test_live_simulation_stamps_events_with_the_wall_clock_and_sends_them_no_sooner(broker, topic_name):
    topics = {s: topic_name(f"-{s}") for s in SOURCES}
    ensure_topics(broker.bootstrap, {t: 4 for t in topics.values()})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYD_")}
    env.update({f"ANOMALYD_TOPIC_{s.upper()}": t for s, t in topics.items()})
    t0 = time.time() * 1000
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomalyd",
            "simulate",
            "--to-kafka",
            broker.bootstrap,
            "--live",
            "--rate",
            "100",
            "--events",
            "150",
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    t1 = time.time() * 1000
    assert p.returncode == 0, p.stderr
    assert "produced 150 events" in p.stderr
    got = consume_all(broker.bootstrap, topics.values())
    ts = sorted(json.loads(v)["ts"] for _t, _p, _o, _k, v in got)
    assert len(ts) == 150
    assert t0 <= ts[0] and ts[-1] <= t1  # event time is the time of sending, not --start's default
    assert t1 - t0 >= ts[-1] - ts[0] > 1000  # paced: 150 events at 100/s span more than a second
