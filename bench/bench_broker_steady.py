"""The embedded broker under a steady rate for minutes: delivery latency, its
memory and its CPU, minute by minute, and what changes them.

    python bench/bench_broker_steady.py [--rate 2000] [--seconds 600] [--window 60]
        [--batch-ms 5] [--fetch-max-wait-ms 50] [--label NAME]

A fresh embedded Tansu (or --bootstrap), 4 topics x 4 partitions. A producer
process sends small JSON records at a steady rate in explicit batches: every
--batch-ms it sends, for each partition, one batch holding the records due
(aiokafka's create_batch/send_batch), so the number of batches the broker
stores is known exactly (what linger.ms does in an ordinary client, without
its jitter). Each record carries the wall clock of when it was due (so the
wait for its batch counts). A
consumer process (aiokafka, no group, every partition assigned) records
arrival minus due time. Every --window seconds the main process reads the
broker's RSS and CPU time from /proc. Prints, per window: records, latency
p50/p99/max, broker RSS, broker CPU (percent of one core) and the batches
and records stored so far. Asserts nothing.

Why it matters (bench/README.md, "Issue 15"): Tansu 0.6's memory storage
keeps one object per produced batch and never deletes one, and a fetch of a
partition lists every object the partition holds; so each fetch costs more
as the partition fills, and the batch count, not the record count, sets how
fast that happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from anomalyd.kafkatools.admin import ensure_topics  # noqa: E402
from bench.bench_broker_latency import PARTITIONS, consume  # noqa: E402  (the same plain consumer)
from bench.bench_soak import pct  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_usage(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds used so far) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / _CLK_TCK


def produce(bootstrap: str, topics: list[str], rate: float, seconds: float, batch_ms: float, counts) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0)
        await p.start()
        tps = [(t, part) for t in topics for part in range(PARTITIONS)]
        t0, wall0 = time.perf_counter(), time.time()
        sent = batches = 0
        pending: list[asyncio.Future] = []
        while (now := time.perf_counter() - t0) < seconds:
            due = int(rate * now) - sent
            if due > 0:
                per_tp: dict[tuple[str, int], list[bytes]] = {}
                for i in range(sent, sent + due):
                    # stamped with when it was due, so the wait for its batch counts as latency
                    record = {"n": i, "sent": wall0 + i / rate}
                    per_tp.setdefault(tps[i % len(tps)], []).append(json.dumps(record).encode())
                for (topic, part), values in per_tp.items():
                    batch = p.create_batch()
                    for v in values:
                        if batch.append(key=None, value=v, timestamp=None) is None:  # full: send it, start another
                            pending.append(await p.send_batch(batch, topic, partition=part))
                            batches += 1
                            batch = p.create_batch()
                            batch.append(key=None, value=v, timestamp=None)
                    pending.append(await p.send_batch(batch, topic, partition=part))
                    batches += 1
                sent += due
                counts[0], counts[1] = sent, batches
            pending = [f for f in pending if not f.done()]
            await asyncio.sleep(max(0.0, batch_ms / 1000 - (time.perf_counter() - t0 - now)))
        await asyncio.gather(*pending)
        await p.stop()

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--window", type=float, default=60, help="seconds per printed row")
    ap.add_argument("--batch-ms", type=float, default=5, help="one batch per partition this often (~ linger.ms)")
    ap.add_argument("--fetch-max-wait-ms", type=int, default=50, help="the worker's setting (FETCH_MAX_WAIT_MS)")
    ap.add_argument("--bootstrap", default=None, help="an existing broker instead of an embedded one")
    ap.add_argument("--label", default="", help="a name for this configuration in the output")
    a = ap.parse_args()
    broker = None
    if a.bootstrap is None:
        broker = EmbeddedBroker(port=0).start()
    bootstrap = a.bootstrap or broker.bootstrap
    rows: list[tuple[float, float, float]] = []  # (t since start, broker RSS MB, broker CPU s)
    counts = mp.Array("q", 2)  # records sent, batches sent
    stored: list[tuple[int, int]] = []
    try:
        tag = uuid.uuid4().hex[:6]
        topics = [f"{s}-{tag}" for s in ("orders", "inventory", "payments", "complaints")]
        ensure_topics(bootstrap, {t: PARTITIONS for t in topics})
        q: mp.Queue = mp.Queue()
        cons = mp.Process(target=consume, args=(bootstrap, topics, a.seconds + 5, a.fetch_max_wait_ms, q))
        cons.start()
        time.sleep(3)  # the consumer is assigned and fetching before the first record
        prod = mp.Process(target=produce, args=(bootstrap, topics, a.rate, a.seconds, a.batch_ms, counts))
        t0 = time.time()
        prod.start()
        if broker is not None:
            rows.append((0.0, *proc_usage(broker.pid)))
        stored.append((0, 0))
        k = 1
        while prod.is_alive():
            time.sleep(max(0.0, t0 + k * a.window - time.time()))
            if broker is not None:
                rows.append((time.time() - t0, *proc_usage(broker.pid)))
            stored.append((counts[0], counts[1]))
            k += 1
            if k * a.window > a.seconds + a.window:
                break
        got = q.get()
        prod.join()
        cons.join()
    finally:
        if broker is not None:
            broker.stop()
    print(f"machine: {platform.machine()}, {mp.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"broker: {'embedded Tansu' if broker else a.bootstrap}; {len(topics)} topics x {PARTITIONS} partitions; "
        f"{a.rate:,.0f} records/s for {a.seconds:.0f} s; a batch per partition every {a.batch_ms:g} ms; "
        f"consumer fetch_max_wait_ms {a.fetch_max_wait_ms}{'; ' + a.label if a.label else ''}"
    )
    print(f"records received: {len(got):,}")
    if not got:
        return
    start = t0
    print("  window s        n   p50 ms   p99 ms   max ms   brk MB  brk CPU%   batches    records")
    w = 0
    while w * a.window < a.seconds:
        lo, hi = w * a.window, (w + 1) * a.window
        xs = [lat for s, lat in got if lo <= s - start < hi]
        mem = cpu = "-"
        if broker is not None and w + 1 < len(rows):
            mem = f"{rows[w + 1][1]:.0f}"
            cpu = f"{100 * (rows[w + 1][2] - rows[w][2]) / (rows[w + 1][0] - rows[w][0]):.0f}"
        b, n = stored[min(w + 1, len(stored) - 1)][::-1]
        if xs:
            print(
                f"  {lo:4.0f}-{hi:<4.0f} {len(xs):8,d} {pct(xs, 0.5) * 1000:8.0f} {pct(xs, 0.99) * 1000:8.0f} "
                f"{max(xs) * 1000:8.0f} {mem:>8} {cpu:>9} {b:9,d} {n:10,d}"
            )
        w += 1
    xs = [lat for _, lat in got]
    print(f"  all       {len(xs):8,d} {pct(xs, 0.5) * 1000:8.0f} {pct(xs, 0.99) * 1000:8.0f} {max(xs) * 1000:8.0f}")


if __name__ == "__main__":
    main()
