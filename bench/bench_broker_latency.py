"""The broker's own delivery latency, without anomalyd: what a plain consumer
sees at the rate the latency target is set for.

    python bench/bench_broker_latency.py [--rate 2000] [--seconds 60] [--fetch-max-wait-ms 50]

An embedded broker (or --bootstrap), 4 topics x 4 partitions as `anomalyd run`
creates them; a producer process sends small JSON records at a steady rate,
each stamped with the wall clock at send; a consumer process (aiokafka, no
group, every partition assigned, the worker's fetch settings) records
arrival minus send time. Separate processes, so neither waits on the other's
event loop. Prints p50/p99/max per 10 s window and overall. Asserts nothing.

It bounds what any consumer, anomalyd's worker included, can reach on that
broker: the worker's event-to-alert latency adds its reorder wait (the
slowest partition) and the output's own trip through the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from anomalyd.kafkatools.admin import ensure_topics  # noqa: E402
from bench.bench_soak import pct  # noqa: E402

PARTITIONS = 4


def produce(bootstrap: str, topics: list[str], rate: float, seconds: float) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", enable_idempotence=False)
        await p.start()
        t0 = time.perf_counter()
        sent = 0
        i = 0
        while time.perf_counter() - t0 < seconds:
            due = int(rate * (time.perf_counter() - t0)) - sent
            for _ in range(due):
                topic = topics[i % len(topics)]
                i += 1
                await p.send(topic, key=f"k{i}".encode(), value=json.dumps({"n": i, "sent": time.time()}).encode())
                sent += 1
            await asyncio.sleep(0.005)
        await p.flush()
        await p.stop()

    asyncio.run(run())


def consume(bootstrap: str, topics: list[str], seconds: float, fetch_wait_ms: int, q) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[tuple[float, float]]:
        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_wait_ms,
            max_poll_records=5000,
        )
        await c.start()
        c.assign([TopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
        got: list[tuple[float, float]] = []
        t_end = time.time() + seconds
        while time.time() < t_end:
            batch = await c.getmany(timeout_ms=200, max_records=5000)
            now = time.time()
            for recs in batch.values():
                for r in recs:
                    sent = json.loads(r.value)["sent"]
                    got.append((sent, now - sent))
        await c.stop()
        return got

    q.put(asyncio.run(run()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--fetch-max-wait-ms", type=int, default=50, help="the worker's setting (FETCH_MAX_WAIT_MS)")
    ap.add_argument("--bootstrap", default=None, help="an existing broker instead of an embedded one")
    a = ap.parse_args()
    broker = None
    if a.bootstrap is None:
        broker = EmbeddedBroker(port=0).start()
    bootstrap = a.bootstrap or broker.bootstrap
    try:
        tag = uuid.uuid4().hex[:6]
        topics = [f"{s}-{tag}" for s in ("orders", "inventory", "payments", "complaints")]
        ensure_topics(bootstrap, {t: PARTITIONS for t in topics})
        q: mp.Queue = mp.Queue()
        cons = mp.Process(target=consume, args=(bootstrap, topics, a.seconds + 5, a.fetch_max_wait_ms, q))
        cons.start()
        time.sleep(3)  # the consumer is assigned and fetching before the first record
        prod = mp.Process(target=produce, args=(bootstrap, topics, a.rate, a.seconds))
        prod.start()
        got = q.get()
        prod.join()
        cons.join()
    finally:
        if broker is not None:
            broker.stop()
    print(f"machine: {platform.machine()}, {mp.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"broker: {'embedded Tansu' if broker else a.bootstrap}; {len(topics)} topics x {PARTITIONS} partitions; "
        f"{a.rate:,.0f} records/s for {a.seconds:.0f} s; consumer fetch_max_wait_ms {a.fetch_max_wait_ms}"
    )
    print(f"records received: {len(got):,}")
    if not got:
        return
    start = min(s for s, _ in got)
    print("  window      n    p50 ms   p99 ms   max ms")
    for w0 in range(0, int(a.seconds), 10):
        xs = [lat for s, lat in got if w0 <= s - start < w0 + 10]
        if xs:
            print(
                f"  {w0:3d}-{w0 + 10:<3d} {len(xs):7,d} {pct(xs, 0.5) * 1000:8.0f} {pct(xs, 0.99) * 1000:8.0f} "
                f"{max(xs) * 1000:8.0f}"
            )
    xs = [lat for _, lat in got]
    print(f"  all     {len(xs):7,d} {pct(xs, 0.5) * 1000:8.0f} {pct(xs, 0.99) * 1000:8.0f} {max(xs) * 1000:8.0f}")


if __name__ == "__main__":
    main()
