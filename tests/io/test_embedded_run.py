"""`anomalyd run` with its embedded broker, started twice in the same
directory, as a newcomer does with `make run`: the second broker starts
empty, so the first run's snapshot must not be applied to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from anomalyd.kafkatools.admin import produce_jsonl
from tests.io.faults import free_port

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
T0 = 1781712000000


def _metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith((name + " ", name + "{")))


def _run_once(tmp: Path, records: list, log: Path) -> dict:
    mport, kport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALYD_")}
    env.update(
        ANOMALYD_METRICS_PORT=str(mport),
        ANOMALYD_EMBEDDED_PORT=str(kport),
        ANOMALYD_STATE_DIR=str(tmp / "state"),
        ANOMALYD_RULES_DIR=str(ROOT / "rules"),
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "anomalyd", "run"], env=env, cwd=tmp, stdout=open(log, "w"), stderr=subprocess.STDOUT
    )
    try:
        end = time.time() + 60
        while _metric(mport, "anomalyd_ready") != 1:
            assert p.poll() is None and time.time() < end, log.read_text()
            time.sleep(0.2)
        produce_jsonl(f"127.0.0.1:{kport}", records)
        while (_metric(mport, "anomalyd_events_consumed_total") or 0) < len(records):
            assert p.poll() is None and time.time() < end, log.read_text()
            time.sleep(0.2)
        return {
            "late": _metric(mport, "anomalyd_events_late_total"),
            "alerts": _metric(mport, "anomalyd_alerts_total"),
            "broker_rss": _metric(mport, "anomalyd_embedded_broker_rss_bytes"),
            "broker_behind": _metric(mport, "anomalyd_embedded_broker_behind"),
        }
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, log.read_text()


def _inv(i: int, ts: int, available: int) -> tuple:
    return (
        "inventory",
        f"S{i}",
        json.dumps({"event_id": f"e{i}-{ts}", "ts": ts, "sku": f"S{i}", "available": available}).encode(),
    )


def test_a_second_run_on_a_new_embedded_broker_does_not_apply_the_first_runs_state(tmp_path):
    first = _run_once(tmp_path, [_inv(i, T0 + 3_600_000 + i, 5) for i in range(50)], tmp_path / "1.log")
    assert first["late"] == 0 and (tmp_path / "state").is_dir()
    # the embedded broker's load is watched (BrokerLoad): its memory is known, and 50 events do not tire it
    assert first["broker_rss"] > 1_000_000 and first["broker_behind"] == 0
    # The new broker's offsets restart at 0 and these events are an hour
    # older than the first run's stream time.
    second = _run_once(tmp_path, [_inv(1, T0, -3)], tmp_path / "2.log")
    log = (tmp_path / "2.log").read_text()
    assert "the embedded broker starts empty; the state saved against an earlier one is set aside" in log
    assert second["late"] == 0 and second["alerts"] == 1  # read, evaluated, and it fires
    assert list((tmp_path / "state").glob("*.stale"))
