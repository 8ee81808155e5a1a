"""anomalyd against its Python peer (Quix Streams) and bare consumers, in one run.

    python bench/bench_peer.py [--events 300000] [--repeats 3] [--peer-python bench/.peer-venv/bin/python]

The peer's virtualenv (Quix pins pydantic below anomalyd's pin):

    python3.11 -m venv bench/.peer-venv && bench/.peer-venv/bin/pip install -r bench/requirements-peer.txt

Every run gets a fresh embedded Tansu, its topics (4 partitions each) and the
same --events simulated events (`anomalyd simulate`, seed 11, orders,
inventory and payments only: the three rules read no complaints), produced
before the contender starts. Contenders alternate, in a rotated order each
repetition:

- `anomalyd run` (a subprocess, as deployed) with bench/peer_rules (three
  default rules Quix can express: negative-stock, order-price-swing,
  payment-failure-ratio), and with the default rules/;
- Quix Streams with the same three rules (bench/peer_quix.py), RocksDB and
  memory state;
- a bare aiokafka consumer and a bare confluent-kafka consumer, no group,
  every partition assigned, `json.loads` per record.

events/s counts from the contender's first record to its last (so a
consumer-group join is left out); CPU s is the contender process's whole
run, start-up and join included. Prints the table of bench/README.md.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from anomalyd.kafkatools.admin import ensure_topics  # noqa: E402
from anomalyd.kafkatools.envelopes import produce_envelopes  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402
from bench.bench_broker_steady import proc_usage  # noqa: E402
from bench.bench_scaleout import SETTING, free_port, metric  # noqa: E402

SOURCES = ["orders", "inventory", "payments", "complaints"]
OUTS = ["alerts", "alerts-shadow", "breaker-commands", "dead-letter"]
PARTITIONS = 4
PEER = ROOT / "bench" / "peer_quix.py"

CONTENDERS = {
    "anomalyd-3": "`anomalyd run`, 3 rules equivalent to the peer's",
    "anomalyd-default": "`anomalyd run`, the default rules ({n})",
    "quix-rocksdb": "Quix Streams {quix}, the same 3 rules, RocksDB state",
    "quix-memory": "Quix Streams {quix}, the same 3 rules, memory state",
    "bare-confluent": "bare confluent-kafka consumer + `json.loads`",
    "bare-aiokafka": "bare aiokafka consumer + `json.loads`",
}


def events(n: int) -> tuple[list[dict], int]:
    """n simulated events of the three sources, and the last one's ts."""
    out = []
    for env in generate(seed=11, events=2 * n):
        if env["topic"] != "complaints":
            out.append(env)
            if len(out) == n:
                break
    return out, max(e["value"]["ts"] for e in out)


def run_anomalyd(bootstrap: str, tag: str, n: int, last_ts: int, rules: Path, tmp: str) -> dict:
    topics = {t: f"{tag}-{t}" for t in SOURCES + OUTS}
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ANOMALYD_BOOTSTRAP_SERVERS": bootstrap,
        "ANOMALYD_GROUP_ID": f"g-{tag}",
        "ANOMALYD_RULES_DIR": str(rules),
        "ANOMALYD_LOG_ALERTS": "false",
        "ANOMALYD_METRICS_PORT": str(port),
        "ANOMALYD_STATE_DIR": f"{tmp}/{tag}",
        "ANOMALYD_TOPIC_CHECKPOINT_STORE": f"{tag}-state",
        **{f"ANOMALYD_TOPIC_{SETTING.get(k, k.upper().replace('-', '_'))}": v for k, v in topics.items()},
    }
    log = open(f"{tmp}/{tag}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "anomalyd", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    first = None
    try:
        while True:
            time.sleep(0.02)
            now = time.perf_counter()
            if first is None and (metric(port, "anomalyd_records_fetched") or 0) > 0:
                first = now
            took = metric(port, "anomalyd_events_processed_lifetime") or 0
            clock = metric(port, "anomalyd_stream_time_seconds") or 0
            if took >= n and abs(clock * 1000 - last_ts) < 1:
                break
            if now - t0 > 600 or proc.poll() is not None:
                raise SystemExit(f"{tag}: {took:.0f} of {n} after {now - t0:.0f} s (log: {tmp}/{tag}.log)")
        _rss, cpu = proc_usage(proc.pid)
        alerts = metric(port, "anomalyd_alerts_total") or 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    return {"n": n, "seconds": now - (first or t0), "cpu_s": cpu, "alerts": alerts}


def run_peer(python: str, args: list[str]) -> dict:
    out = subprocess.run([python, str(PEER), *args], capture_output=True, text=True, timeout=900)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"peer {args[0]} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_bare_aiokafka(bootstrap: str, tag: str, n: int) -> dict:
    """In a child process (this file with --bare-aiokafka) so its CPU is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--bare-aiokafka", bootstrap, tag, str(n)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise SystemExit(f"bare aiokafka failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def bare_aiokafka(bootstrap: str, tag: str, n: int) -> None:
    import asyncio
    import resource

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> dict:
        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await c.start()
        tps = [TopicPartition(f"{tag}-{s}", p) for s in SOURCES[:3] for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got, first, sink = 0, None, 0
        while got < n:
            for recs in (await c.getmany(timeout_ms=200, max_records=5000)).values():
                if recs and first is None:
                    first = time.perf_counter()
                for r in recs:
                    sink += len(json.loads(r.value))
                got += len(recs)
        last = time.perf_counter()
        await c.stop()
        return {"n": got, "seconds": last - first, "alerts": 0}

    res = asyncio.run(run())
    r = resource.getrusage(resource.RUSAGE_SELF)
    res["cpu_s"] = r.ru_utime + r.ru_stime
    print(json.dumps(res))


def one_run(name: str, envs: list[dict], last_ts: int, a, tmp: str) -> dict:
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    with EmbeddedBroker(port=0) as broker:
        bs = broker.bootstrap
        names = [f"{tag}-{t}" for t in SOURCES + OUTS]
        # Quix reads retention.ms of its input topics, which Tansu reports only when set at creation
        ensure_topics(bs, {t: PARTITIONS for t in names}, {t: {"retention.ms": "604800000"} for t in names})
        produce_envelopes(bs, envs, {s: f"{tag}-{s}" for s in SOURCES})
        n = len(envs)
        if name == "anomalyd-3":
            return run_anomalyd(bs, tag, n, last_ts, ROOT / "bench" / "peer_rules", tmp)
        if name == "anomalyd-default":
            return run_anomalyd(bs, tag, n, last_ts, ROOT / "rules", tmp)
        if name.startswith("quix-"):
            return run_peer(a.peer_python, ["quix", bs, tag, str(n), f"{tmp}/{tag}", name.split("-")[1]])
        if name == "bare-confluent":
            return run_peer(a.peer_python, ["confluent", bs, tag, str(n)])
        return run_bare_aiokafka(bs, tag, n)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--bare-aiokafka":
        bare_aiokafka(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-python", default=str(ROOT / "bench" / ".peer-venv" / "bin" / "python"))
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, of: " + ", ".join(CONTENDERS))
    a = ap.parse_args()
    names = a.contenders.split(",")
    envs, last_ts = events(a.events)
    quix = subprocess.run(
        [a.peer_python, "-c", "import quixstreams; print(quixstreams.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    n_default = sum(1 for p in (ROOT / "rules").glob("*.yaml") for ln in p.read_text().splitlines() if "- id:" in ln)
    results: dict[str, list[dict]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        for rep in range(a.repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                r = one_run(name, envs, last_ts, a, tmp)
                results[name].append(r)
                print(
                    f"  run {rep + 1} {name:17s} {r['n'] / r['seconds']:9,.0f} events/s  {r['cpu_s']:5.1f} CPU s"
                    f"  alerts {r['alerts']:.0f}",
                    flush=True,
                )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{a.events:,} simulated events (orders, inventory, payments) on {PARTITIONS} partitions a topic, "
        f"a fresh embedded Tansu a run, {a.repeats} repetitions alternating"
    )
    print("| contender | events/s, median [min–max] | CPU s per run |")
    print("|---|---|---|")
    for name in names:
        rates = [r["n"] / r["seconds"] for r in results[name]]
        cpu = statistics.median(r["cpu_s"] for r in results[name])
        label = CONTENDERS[name].format(n=n_default, quix=quix)
        print(f"| {label} | {statistics.median(rates):,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] | {cpu:.1f} |")


if __name__ == "__main__":
    main()
