"""Scale-out benchmark: one worker versus two, through the embedded broker.

    python bench/bench_scaleout.py [--events 200000] [--shards 4]

N simulated events (default rules, labelled anomalies) are produced to
4 topics x 4 partitions first; then `anomalyd run` processes (real
subprocesses, as deployed) are started and timed until every event is
processed: in direct mode (ANOMALYD_SHARDS=0) until the lifetime count
reaches N; in scale-out mode until the routers have taken N records and
every shard's stream time has reached the last event's ts. Each phase has
its own topics and group. Also checks that every phase emitted the same
alert ids as `anomalyd replay` on the same events. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from anomalyd.kafkatools.admin import consume_all, ensure_topics  # noqa: E402
from anomalyd.kafkatools.envelopes import produce_envelopes  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402

SOURCES = ["orders", "inventory", "payments", "complaints"]
OUTS = ["alerts", "alerts-shadow", "breaker-commands", "dead-letter"]
# The one topic whose setting is not named after it (an unknown ANOMALYD_ name
# is refused at start, so ANOMALYD_TOPIC_BREAKER_COMMANDS stopped every phase).
SETTING = {"breaker-commands": "COMMANDS"}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    vals = [
        float(ln.rsplit(" ", 1)[1])
        for ln in text.splitlines()
        if ln.startswith(name + " ") or ln.startswith(name + "{")
    ]
    return sum(vals) if vals else None


def phase(
    bootstrap: str, envs: list[dict], n: int, last_ts: int, workers: int, shards: int, tmp: str, tag: str
) -> dict:
    topics = {t: f"{tag}-{t}" for t in SOURCES + OUTS}
    env = {
        **os.environ,
        "ANOMALYD_BOOTSTRAP_SERVERS": bootstrap,
        "ANOMALYD_GROUP_ID": f"g-{tag}",
        "ANOMALYD_SHARDS": str(shards),
        "ANOMALYD_TOPIC_REPARTITION": f"{tag}-routed",
        "ANOMALYD_TOPIC_CHECKPOINT_STORE": f"{tag}-state",
        "ANOMALYD_LOG_ALERTS": "false",
        **{f"ANOMALYD_TOPIC_{SETTING.get(k, k.upper().replace('-', '_'))}": v for k, v in topics.items()},
    }
    ensure_topics(bootstrap, {v: 4 for v in topics.values()})
    produce_envelopes(bootstrap, envs, {s: topics[s] for s in SOURCES})
    procs, ports = [], []
    t0 = time.perf_counter()
    for i in range(workers):
        port = free_port()
        ports.append(port)
        e = {**env, "ANOMALYD_METRICS_PORT": str(port), "ANOMALYD_STATE_DIR": f"{tmp}/{tag}-{i}"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "anomalyd", "run"],
                env=e,
                stdout=open(f"{tmp}/{tag}-{i}.log", "w"),
                stderr=subprocess.STDOUT,
            )
        )
    ready_at = None
    try:
        while True:
            time.sleep(0.05)
            if ready_at is None and all(metric(p, "anomalyd_ready") == 1 for p in ports):
                ready_at = time.perf_counter()
            took = sum(metric(p, "anomalyd_events_processed_lifetime") or 0 for p in ports)
            clocks = [metric(p, "anomalyd_stream_time_seconds") or 0 for p in ports]
            if took >= n and all(abs(c * 1000 - last_ts) < 1 for c in clocks):
                done = time.perf_counter()
                break
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"phase {tag} timed out: {took} of {n}")
        cpu = []
        for p in procs:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    alerts = {json.loads(v)["alert_id"] for _t, _p, _o, _k, v in consume_all(bootstrap, [topics["alerts"]], 1.5)}
    return {
        "workers": len(procs),
        "shards": shards,
        "total_s": done - t0,
        "after_ready_s": done - (ready_at or t0),
        "rate": n / (done - (ready_at or t0)),
        "cpu_s": cpu,
        "alerts": alerts,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=4)
    a = ap.parse_args()
    envs = [{"topic": e["topic"], "value": e["value"]} for e in generate(seed=11, events=a.events)]
    last_ts = max(e["value"]["ts"] for e in envs)
    lines = "\n".join(json.dumps(e) for e in envs)
    ref = subprocess.run(
        [sys.executable, "-m", "anomalyd", "replay", "-", "--rules", "rules"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    ref_alerts = {json.loads(ln)["value"]["alert_id"] for ln in ref if json.loads(ln)["topic"] == "alerts"}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{a.events:,} simulated events (seed 11), 4 topics x 4 partitions, default rules; "
        f"replay gives {len(ref_alerts)} alerts"
    )
    results = []
    with EmbeddedBroker(port=0) as broker, tempfile.TemporaryDirectory() as tmp:
        for workers, shards in ((1, 0), (1, a.shards), (2, a.shards)):
            tag = f"so-{uuid.uuid4().hex[:6]}"
            r = phase(broker.bootstrap, envs, a.events, last_ts, workers, shards, tmp, tag)
            results.append(r)
            mode = "direct" if not shards else f"scale-out, {shards} shards"
            same = (
                "same alerts as replay"
                if r["alerts"] == ref_alerts
                else f"ALERTS DIFFER: {len(ref_alerts - r['alerts'])} missing, {len(r['alerts'] - ref_alerts)} extra"
            )
            print(
                f"  {workers} worker(s), {mode:<22} {r['rate']:>9,.0f} events/s after ready "
                f"({r['after_ready_s']:.1f} s; {r['total_s']:.1f} s with start-up); "
                f"CPU {' + '.join(f'{c:.1f}' for c in r['cpu_s'])} s; {same}"
            )
    one, two = results[1], results[2]
    print(f"  two workers / one worker (scale-out mode): {two['rate'] / one['rate']:.2f} x")
    print(f"  scale-out mode, one worker / direct mode:   {one['rate'] / results[0]['rate']:.2f} x")


if __name__ == "__main__":
    main()
