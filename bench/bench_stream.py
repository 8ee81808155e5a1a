"""Streaming benchmarks on the embedded broker: worker throughput vs a bare
aiokafka consumer, and event-to-alert latency at a steady paced rate.

    python bench/bench_stream.py [--events 200000] [--latency-seconds 60]
                                 [--variant-seconds 20] [--rate 2000]

Prints figures (no asserts). Everything runs in one process except the Tansu
broker; the worker is built as `anomalyd run` builds it (default rules, default
settings, PromHooks), with a fresh state dir and a unique group id per phase.
Worker/broker logs go to bench/out/bench_stream.log.

1. Throughput: N simulated events pre-produced to 4 topics x 4 partitions, then
   one worker started; timed until engine.consumed + engine.invalid == N
   (late events are counted inside engine.consumed). Reported from worker start
   (includes the consumer group join) and from the first fetched batch.
2. Bare consumer: aiokafka, no group, all 16 partitions assigned, seek to
   beginning, getmany + json.loads per value, same topics.
3. Latency: live traffic paced at --rate events/s (ts = wall clock ms) through a
   fresh worker; injected negative-stock events on fresh SKUs (fire) and a
   restock 1 s later (resolve). Latency = wall clock when a separate consumer
   reads the alert from the alerts topic - the alert's `ts` (percentiles leave out
   the first --warmup s and the last 0.5 s of traffic, reported apart). Scenarios: all 16
   partitions steady; complaints sparse (--sparse-complaints/s in total);
   complaints idle (no complaints at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from anomalyd.cli.run import engine_config, session_timeout_ms  # noqa: E402
from anomalyd.engine.engine import Engine  # noqa: E402
from anomalyd.engine.rules.loader import load_rules  # noqa: E402
from anomalyd.engine.timeutil import parse_ts  # noqa: E402
from anomalyd.io.direct import Direct, direct_worker  # noqa: E402
from anomalyd.io.runtime import Runtime  # noqa: E402
from anomalyd.io.snapshots import SnapshotFile  # noqa: E402
from anomalyd.kafkatools.admin import ensure_topics  # noqa: E402
from anomalyd.kafkatools.envelopes import KEY_FIELD, produce_envelopes  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402
from anomalyd.surfaces.metrics import PromHooks  # noqa: E402
from anomalyd.surfaces.settings import Settings  # noqa: E402

SOURCES = ["orders", "inventory", "payments", "complaints"]
OUTPUTS = {
    "alerts": "alerts",
    "alerts-shadow": "alerts-shadow",
    "breaker-commands": "breaker-commands",
    "dead-letter": "dead-letter",
}
PARTITIONS = 4
OUT = ROOT / "bench" / "out"


def names(prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    """(input topic -> source, output kind -> topic) with a per-phase prefix."""
    return ({f"{prefix}-{s}": s for s in SOURCES}, {k: f"{prefix}-{v}" for k, v in OUTPUTS.items()})


class BenchHooks(PromHooks):
    """PromHooks (as `anomalyd run` uses) + the start time of the first non-empty batch."""

    def __init__(self, registry):
        super().__init__(registry)
        self.first_batch: float | None = None

    def batch(self, seconds: float, records: int) -> None:
        if records and self.first_batch is None:
            self.first_batch = time.perf_counter() - seconds
        super().batch(seconds, records)


LIVE_DELAY_MS: int | None = None  # --live-delay-ms


def make_worker(bootstrap: str, prefix: str, state_dir: str) -> tuple[Runtime, BenchHooks]:
    s = Settings()
    inputs, outputs = names(prefix)
    hooks = BenchHooks(CollectorRegistry())
    group = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    engine = Engine(load_rules(ROOT / "rules"), engine_config(s))
    w = direct_worker(
        bootstrap=bootstrap,
        engine=engine,
        input_topics=inputs,
        output_topics=outputs,
        group_id=group,
        snapshots=SnapshotFile(Path(state_dir), group),
        checkpoint_interval_s=s.ms("checkpoint_interval") / 1000,
        session_timeout_ms=session_timeout_ms(s, embedded=True),  # as `anomalyd run` on the embedded broker
        security=s.kafka_security(),
        client_id=s.client_id,
        hooks=hooks,
        log_alerts=s.log_alerts,
        partition_idle_s=s.ms("partition_idle_timeout") / 1000,
        partition_live_delay_ms=s.ms("partition_live_delay") if LIVE_DELAY_MS is None else LIVE_DELAY_MS,
    )
    return w, hooks


async def stop_worker(w: Runtime, task: asyncio.Task) -> None:
    w.stopping.set()
    try:
        await asyncio.wait_for(task, timeout=20)
    except asyncio.TimeoutError:
        task.cancel()
        print("  (worker did not stop within 20 s; cancelled)")


async def create_topics(bootstrap: str, prefix: str) -> None:
    inputs, outputs = names(prefix)
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: ensure_topics(bootstrap, {t: PARTITIONS for t in [*inputs, *outputs.values()]})
    )


def direct(w: Runtime):
    return w.stage("direct").strategy


def processed(w: Runtime) -> int:
    e = direct(w).engine
    return sum(e.consumed.values()) + sum(e.invalid.values())  # e.late is a subset of e.consumed


# -- 1. worker throughput ----------------------------------------------------------------------
async def bench_worker(bootstrap: str, prefix: str, n: int, state_dir: str, timeout_s: float) -> dict:
    w, hooks = make_worker(bootstrap, prefix, state_dir)
    t0 = time.perf_counter()
    task = asyncio.create_task(w.run())
    t_assigned = t_first_proc = t_fetched = t_done = None
    held_at_fetched = 0
    trace: list[tuple[float, int]] = []  # (s since start, processed): where the end of the backlog stalls
    cpu0 = time.process_time()
    while time.perf_counter() - t0 < timeout_s and not task.done():
        await asyncio.sleep(0.05)
        now = time.perf_counter()
        p = processed(w)
        trace.append((now - t0, p))
        if t_assigned is None and w.assigned:
            t_assigned = now
        if t_first_proc is None and p > 0:
            t_first_proc = now
        if t_fetched is None and w.records >= n:
            t_fetched, held_at_fetched = now, n - p
        if p >= n:
            t_done = now
            break
    e = direct(w).engine
    res = dict(
        n=n,
        processed=processed(w),
        late=e.late,
        invalid=sum(e.invalid.values()),
        alerts=w.produced.get("alerts", 0),
        fetched=w.records,
        held_at_fetched=held_at_fetched,
        cpu_s=time.process_time() - cpu0,  # this process: worker and bench (the broker is apart)
    )
    if t_done:
        # how long the last fifth of the backlog took, against the first four fifths' rate
        t80 = next(t for t, p in trace if p >= 0.8 * n)
        res["last_fifth_s"] = t_done - t0 - t80
    await stop_worker(w, task)
    if task.done() and not task.cancelled() and task.exception():
        res["error"] = repr(task.exception())
    _, snap_n, snap_sum = hist_quantile(hooks.snap, 0.5)
    res.update(snap_n=snap_n, snap_s=snap_sum, snap_bytes=hooks.snap_bytes._value.get())
    fb = hooks.first_batch
    res.update(
        join_s=(fb - t0) if fb else None,
        assigned_s=(t_assigned - t0) if t_assigned else None,
        first_processed_s=(t_first_proc - t0) if t_first_proc else None,
        total_s=(t_done - t0) if t_done else None,
        fetched_s=(t_fetched - fb) if (t_fetched and fb) else None,
    )
    if t_done and fb:
        res["rate_with_join"] = n / (t_done - t0)
        res["rate_no_join"] = n / (t_done - fb)
        res["rate_fetch"] = n / (t_fetched - fb) if t_fetched else None
    return res


# -- 2. bare consumer ---------------------------------------------------------------------------
async def bench_bare(bootstrap: str, prefix: str, n: int, timeout_s: float) -> dict:
    inputs, _ = names(prefix)
    t0 = time.perf_counter()
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await c.start()
    tps = [TopicPartition(t, p) for t in inputs for p in range(PARTITIONS)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    got, t_first, sink = 0, None, 0
    try:
        while got < n and time.perf_counter() - t0 < timeout_s:
            batch = await c.getmany(timeout_ms=200, max_records=5000)
            for recs in batch.values():
                if recs and t_first is None:
                    t_first = time.perf_counter()
                for r in recs:
                    sink += len(json.loads(r.value))
                got += len(recs)
        t_done = time.perf_counter()
    finally:
        await c.stop()
    return dict(
        got=got,
        total_s=t_done - t0,
        first_s=(t_first - t0) if t_first else None,
        rate_with_start=got / (t_done - t0),
        rate_no_start=got / (t_done - t_first) if t_first else None,
    )


# -- 3. latency --------------------------------------------------------------------------------------
def hist_quantile(hist, q: float) -> tuple[float | None, int, float]:
    """Prometheus-style quantile estimate from a prometheus_client Histogram: (estimate, count, sum)."""
    buckets, count, total = [], 0, 0.0
    for metric in hist.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                count = int(s.value)
            elif s.name.endswith("_sum"):
                total = s.value
    if not count:
        return None, 0, 0.0
    buckets.sort()
    rank = q * count
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le, count, total
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9)), count, total
        prev_le, prev_c = le, c
    return None, count, total


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


async def bench_latency(
    bootstrap: str,
    prefix: str,
    seconds: float,
    rate: float,
    complaints: str,
    sparse_rate: float,
    inject_rate: float,
    warmup_s: float,
    state_dir: str,
) -> dict:
    """complaints: 'steady' (as simulated, ~4% of traffic), 'sparse' (sparse_rate/s in total) or 'idle' (none)."""
    inputs, outputs = names(prefix)
    topic_of = {s: t for t, s in inputs.items()}
    await create_topics(bootstrap, prefix)
    w, hooks = make_worker(bootstrap, prefix, state_dir)
    t0 = time.perf_counter()
    task = asyncio.create_task(w.run())
    while not w.ready and time.perf_counter() - t0 < 30 and not task.done():
        await asyncio.sleep(0.02)
    join_s = time.perf_counter() - t0

    # The measuring consumer: no group, every alerts partition from the beginning.
    ac = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await ac.start()
    atps = [TopicPartition(outputs["alerts"], p) for p in range(PARTITIONS)]
    ac.assign(atps)
    await ac.seek_to_beginning(*atps)
    alerts: list[tuple[int, float, str, str]] = []  # (alert ts ms, latency s, status, rule_id)
    done = asyncio.Event()

    async def read_alerts():
        while not done.is_set():
            batch = await ac.getmany(timeout_ms=50)
            now = time.time()
            for recs in batch.values():
                for r in recs:
                    v = json.loads(r.value)
                    ts = parse_ts(v["ts"])
                    alerts.append((ts, now - ts / 1000, v.get("status", "?"), v.get("rule_id", "?")))
                    if v.get("status") == "firing":
                        for eid in v.get("evidence", []):
                            st = stages.get(eid)
                            if st is not None:
                                st.setdefault("read", now)

    reader = asyncio.create_task(read_alerts())

    # The floor: a bare consumer (no group) reading the same input records
    # with the worker's fetch wait; its latency is its read minus the ts.
    bc = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=Direct.fetch_max_wait_ms,
    )
    await bc.start()
    btps = [TopicPartition(t, p) for t in inputs for p in range(PARTITIONS)]
    bc.assign(btps)
    await bc.seek_to_beginning(*btps)
    bare: list[tuple[int, float, bool]] = []  # (ts ms, latency s, an injected negative stock)

    async def read_bare():
        while not done.is_set():
            batch = await bc.getmany(timeout_ms=50)
            now = time.time()
            for recs in batch.values():
                for r in recs:
                    v = json.loads(r.value)
                    bare.append((v["ts"], now - v["ts"] / 1000, v["event_id"].startswith("inj-")))

    bare_reader = asyncio.create_task(read_bare())

    # Diagnostics: events the engine got out of ts order, and how often the
    # reorder buffer's watermark is +inf (every partition treated as idle: no holding back).
    ooo = {"n": 0, "max_ms": 0, "hi": -1, "events": 0}
    # Where an injected event's latency goes: fetched by the worker (pushed
    # into the reorder buffer), released to the engine, alert handed to the
    # producer, alert read by the measuring consumer. Wall clock, seconds.
    stages: dict[str, dict[str, float]] = {}
    orig = direct(w).engine.process_event

    def process_event(source, ev):
        ooo["events"] += 1
        if ev.ts < ooo["hi"]:
            ooo["n"] += 1
            ooo["max_ms"] = max(ooo["max_ms"], ooo["hi"] - ev.ts)
        else:
            ooo["hi"] = ev.ts
        st = stages.get(ev.event_id)
        if st is not None and "released" not in st:
            st["released"] = time.time()
        return orig(source, ev)

    direct(w).engine.process_event = process_event
    orig_push = direct(w).buffer.push_many

    def push_many(part, items):
        for ts, item in items:
            eid = getattr(item[1], "event_id", "")
            if eid.startswith("inj-"):
                stages[eid] = {"ts": ts / 1000, "fetched": time.time()}
        return orig_push(part, items)

    direct(w).buffer.push_many = push_many
    orig_emit = w.emit

    async def emit(outs):
        now = time.time()
        for kind, _k, v in outs:
            if kind == "alerts" and v.get("status") == "firing":
                for eid in v.get("evidence", []):
                    if eid in stages:
                        stages[eid].setdefault("emitted", now)
        await orig_emit(outs)

    w.emit = emit
    # How late the event loop wakes a 10 ms sleeper: the worker, producer and
    # this reader share one loop, so a long batch delays everything in it.
    loop_lag: list[float] = []

    async def watch_loop():
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            loop_lag.append(time.perf_counter() - t - 0.01)

    lagger = asyncio.create_task(watch_loop())
    wm = {"samples": 0, "inf": 0}

    async def sample_watermark():
        while not done.is_set():
            await asyncio.sleep(0.05)
            if warmup_s < time.perf_counter() - tp0 < seconds:  # while traffic flows
                wm["samples"] += 1
                wm["inf"] += direct(w).buffer.watermark() == float("inf")

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    bg = (e for e in generate(seed=5, minutes=10_000_000, anomalies=[]))
    sent = {s: 0 for s in SOURCES}
    injected = 0
    restocks: list[tuple[float, str]] = []
    start_wall = time.time()
    tp0 = time.perf_counter()
    sampler = asyncio.create_task(sample_watermark())
    next_inject = tp0 + 1 / inject_rate
    next_complaint = tp0 + (1 / sparse_rate if sparse_rate > 0 else 1e18)
    total = 0
    futs = []

    def send(source: str, value: dict) -> None:
        nonlocal total
        value["ts"] = int(time.time() * 1000)
        key = value.get(KEY_FIELD[source])
        futs.append(
            asyncio.ensure_future(
                producer.send(
                    topic_of[source],
                    key=str(key).encode() if key is not None else None,
                    value=json.dumps(value, separators=(",", ":")).encode(),
                )
            )
        )
        sent[source] += 1
        total += 1

    while True:
        now = time.perf_counter()
        el = now - tp0
        if el >= seconds:
            break
        due = int(rate * el) - total
        while due > 0:
            now = time.perf_counter()
            if now >= next_inject:
                injected += 1
                sku = f"BENCH-{prefix}-{injected:06d}"
                send(
                    "inventory",
                    {
                        "event_id": f"inj-{prefix}-{injected}",
                        "sku": sku,
                        "available": -5,
                        "warehouse": "WH-EAST",
                        "reason": "flash-sale",
                    },
                )
                restocks.append((now + 1.0, sku))
                next_inject += 1 / inject_rate
            elif restocks and restocks[0][0] <= now:
                _, sku = restocks.pop(0)
                send(
                    "inventory",
                    {
                        "event_id": f"rst-{prefix}-{sku}",
                        "sku": sku,
                        "available": 400,
                        "warehouse": "WH-EAST",
                        "reason": "restock",
                    },
                )
            elif complaints == "sparse" and now >= next_complaint:
                env = next(e for e in bg if e["topic"] == "complaints")
                send("complaints", env["value"])
                next_complaint += 1 / sparse_rate
            else:
                env = next(bg)
                if env["topic"] == "complaints" and complaints != "steady":
                    continue
                send(env["topic"], env["value"])
            due -= 1
        if len(futs) > 2000:
            await asyncio.gather(*futs)
            futs.clear()
        await asyncio.sleep(0.005)  # 5 ms slices: ~10 events per slice at 2,000/s
    produce_s = time.perf_counter() - tp0
    await asyncio.gather(*futs)
    await producer.stop()
    # Wait for trailing alerts (restocks in flight + one idle timeout + margin).
    await asyncio.sleep(1.0 + direct(w).buffer.idle_s + 1.5)
    done.set()
    await reader
    await bare_reader
    await bc.stop()
    await sampler
    await lagger
    await ac.stop()
    q50, hn, hsum = hist_quantile(hooks.latency, 0.5)
    q99, _, _ = hist_quantile(hooks.latency, 0.99)
    e = direct(w).engine
    _, snap_n, snap_sum = hist_quantile(hooks.snap, 0.5)
    info = dict(
        late=e.late,
        invalid=sum(e.invalid.values()),
        processed=processed(w),
        ooo=ooo["n"],
        ooo_max_ms=ooo["max_ms"],
        ooo_of=ooo["events"],
        wm_inf=(wm["inf"] / wm["samples"]) if wm["samples"] else None,
        snap_n=snap_n,
        snap_mean=(snap_sum / snap_n) if snap_n else None,
        snap_bytes=hooks.snap_bytes._value.get(),
        loop_lag_p99=pct(loop_lag, 0.99),
        loop_lag_max=max(loop_lag) if loop_lag else None,
    )
    warm = start_wall + warmup_s
    full = [st for st in stages.values() if len(st) == 5 and warm <= st["ts"] < start_wall + produce_s - 0.5]
    for name, a_, b_ in (
        ("fetch", "ts", "fetched"),
        ("hold", "fetched", "released"),
        ("evaluate", "released", "emitted"),
        ("deliver", "emitted", "read"),
        ("total", "ts", "read"),
    ):
        xs = [st[b_] - st[a_] for st in full]
        info[f"stage_{name}"] = (pct(xs, 0.5), pct(xs, 0.99), max(xs) if xs else None)
    info["stage_n"] = len(full)
    await stop_worker(w, task)

    (OUT / f"alerts-{prefix}.json").write_text(
        json.dumps({"start_wall": start_wall, "produce_s": produce_s, "alerts": alerts})
    )
    warm_ms = int((start_wall + warmup_s) * 1000)
    tail_ms = int((start_wall + produce_s - 0.5) * 1000)  # when traffic stops, the last events wait for idle_s
    steady = [lat for ts, lat, _s, _r in alerts if warm_ms <= ts < tail_ms]
    early = [lat for ts, lat, _s, _r in alerts if ts < warm_ms]
    tail = [lat for ts, lat, _s, _r in alerts if ts >= tail_ms]
    bare_all = [lat for ts, lat, _i in bare if warm_ms <= ts < tail_ms]
    bare_inj = [lat for ts, lat, inj in bare if inj and warm_ms <= ts < tail_ms]
    rules: dict[str, int] = {}
    for _ts, _l, st, rid in alerts:
        rules[f"{rid}/{st}"] = rules.get(f"{rid}/{st}", 0) + 1
    return dict(
        scenario=f"complaints {complaints}" + (f" ({sparse_rate:g}/s)" if complaints == "sparse" else ""),
        join_s=join_s,
        seconds=produce_s,
        sent=total,
        rate=total / produce_s,
        by_source=sent,
        injected=injected,
        alerts=len(alerts),
        n=len(steady),
        by_rule=rules,
        p50=pct(steady, 0.5),
        p99=pct(steady, 0.99),
        max=max(steady) if steady else None,
        mean=statistics.fmean(steady) if steady else None,
        early_n=len(early),
        early_max=max(early) if early else None,
        tail_n=len(tail),
        tail_max=max(tail) if tail else None,
        bare_n=len(bare_all),
        bare_p50=pct(bare_all, 0.5),
        bare_p99=pct(bare_all, 0.99),
        bare_max=max(bare_all) if bare_all else None,
        bare_inj_n=len(bare_inj),
        bare_inj_p99=pct(bare_inj, 0.99),
        hist_p50=q50,
        hist_p99=q99,
        hist_n=hn,
        hist_mean=hsum / hn if hn else None,
        **info,
    )


# -- main ---------------------------------------------------------------------------------------------
def f(x, fmt="{:,.0f}", none="-"):
    return none if x is None else fmt.format(x)


def ms(x):
    return f(x * 1000 if x is not None else None, "{:,.0f} ms")


async def main(a) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / "bench_stream.log"
    logging.basicConfig(
        level=logging.INFO,
        filename=str(log_path),
        filemode="w",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    T0 = time.perf_counter()
    load0 = os.getloadavg()
    broker = EmbeddedBroker(port=0).start()
    loop = asyncio.get_running_loop()
    print(f"embedded broker {broker.bootstrap} (pid {broker.pid}); logs: {log_path.relative_to(ROOT)}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-stream-") as state_dir:
            # 1 + 2: backlog
            prefix = "tput"
            await create_topics(broker.bootstrap, prefix)
            inputs, _ = names(prefix)
            topic_names = {s: t for t, s in inputs.items()}
            t = time.perf_counter()
            n = await loop.run_in_executor(
                None, lambda: produce_envelopes(broker.bootstrap, generate(seed=11, events=a.events), topic_names)
            )
            prod_s = time.perf_counter() - t
            print(
                f"\n[backlog] produced {n:,} simulated events to 4 topics x {PARTITIONS} partitions "
                f"in {prod_s:.1f} s ({n / prod_s:,.0f}/s, kafka-python, generation included)",
                flush=True,
            )

            wr = await bench_worker(broker.bootstrap, prefix, n, state_dir, a.timeout)
            print(
                f"\n[worker] one worker, default rules: join (start -> first fetched batch) {f(wr['join_s'], '{:.2f} s')}, "
                f"all processed at {f(wr['total_s'], '{:.2f} s')} after start"
            )
            print(
                f"  processed {wr['processed']:,}/{n:,} (late {wr['late']}, invalid {wr['invalid']}), alerts {wr['alerts']}; "
                f"CPU {wr['cpu_s']:.1f} s; the last fifth of the backlog took {f(wr.get('last_fifth_s'), '{:.2f} s')}"
            )
            print(
                f"  checkpoints: {wr['snap_n']}, {wr['snap_s']:.2f} s in all; the last snapshot "
                f"{wr['snap_bytes'] / 1e3:,.0f} kB"
            )
            print(
                f"  events/s incl. join: {f(wr.get('rate_with_join'))}   excl. join: {f(wr.get('rate_no_join'))}"
                f"   (all fetched {f(wr['fetched_s'], '{:.2f} s')} after first batch = {f(wr.get('rate_fetch'))}/s;"
                f" {wr['held_at_fetched']} events still held by the reorder buffer then)"
            )
            if "error" in wr:
                print(f"  worker error: {wr['error']}")
            print(flush=True)

            br = await bench_bare(broker.bootstrap, prefix, n, a.timeout)
            ratio = (
                (wr["rate_no_join"] / br["rate_no_start"]) if wr.get("rate_no_join") and br["rate_no_start"] else None
            )
            print(
                f"[bare] aiokafka, no group, assign+seek, getmany+json.loads: {br['got']:,} in {br['total_s']:.2f} s, "
                f"first record {f(br['first_s'], '{:.2f} s')}"
            )
            print(
                f"  events/s incl. start: {f(br['rate_with_start'])}   from first record: {f(br['rate_no_start'])}"
                f"   worker/bare (both from first record): {f(ratio, '{:.2f}')}",
                flush=True,
            )

            # 3: latency
            lat = []
            plans = [
                ("lat-steady", a.latency_seconds, "steady"),
                ("lat-sparse", a.variant_seconds, "sparse"),
                ("lat-idle", a.variant_seconds, "idle"),
            ]
            for pfx, secs, mode in plans:
                if secs <= 0:
                    continue
                r = await bench_latency(
                    broker.bootstrap, pfx, secs, a.rate, mode, a.sparse_complaints, a.inject_rate, a.warmup, state_dir
                )
                lat.append(r)
                print(
                    f"\n[latency: {r['scenario']}] {r['seconds']:.0f} s at {r['rate']:,.0f} events/s "
                    f"({', '.join(f'{k} {v:,}' for k, v in r['by_source'].items())}); join {r['join_s']:.1f} s"
                )
                print(
                    f"  alerts read {r['alerts']} ({', '.join(f'{k} {v}' for k, v in sorted(r['by_rule'].items()))}); "
                    f"late {r['late']}, invalid {r['invalid']}"
                )
                print(
                    f"  consumed-from-alerts minus alert ts, after {a.warmup:g} s warm-up, before the last 0.5 s "
                    f"(n={r['n']}): p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, max {ms(r['max'])}, mean {ms(r['mean'])}"
                )
                print(
                    f"  bare consumer reading the same input records (read minus ts, same window, n={r['bare_n']:,}): "
                    f"p50 {ms(r['bare_p50'])}, p99 {ms(r['bare_p99'])}, max {ms(r['bare_max'])}; "
                    f"the injected negative stock alone (n={r['bare_inj_n']}) p99 {ms(r['bare_inj_p99'])}; "
                    f"alert p99 / bare p99 = {f(r['p99'] / r['bare_p99'] if r['p99'] and r['bare_p99'] else None, '{:.2f}')}"
                )
                print(
                    f"  left out: warm-up n={r['early_n']} max {ms(r['early_max'])}; "
                    f"last 0.5 s n={r['tail_n']} max {ms(r['tail_max'])}"
                )
                print(
                    f"  worker histogram (emit minus ts, bucket estimate, n={r['hist_n']}): "
                    f"p50 ~{ms(r['hist_p50'])}, p99 ~{ms(r['hist_p99'])}, mean {ms(r['hist_mean'])}"
                )
                print(
                    f"  reorder buffer: watermark +inf (nothing held back) in {f(r['wm_inf'], '{:.0%}')} of samples "
                    f"while traffic flowed (after warm-up); {r['ooo']:,} of {r['ooo_of']:,} events reached the engine out of ts order "
                    f"(max {r['ooo_max_ms']} ms behind)"
                )
                print(
                    f"  checkpoints: {r['snap_n']}, mean {ms(r['snap_mean'])} each, last snapshot "
                    f"{r['snap_bytes'] / 1e3:,.0f} kB"
                )
                print(
                    f"  negative-stock alerts by stage (n={r['stage_n']}), p50 / p99 / max: "
                    + "; ".join(
                        f"{k} {ms(r['stage_' + k][0])} / {ms(r['stage_' + k][1])} / {ms(r['stage_' + k][2])}"
                        for k in ("fetch", "hold", "evaluate", "deliver", "total")
                    )
                )
                print(
                    "    (fetch: ts to the worker's fetch; hold: reorder buffer; evaluate: engine and hand-off to "
                    "the producer; deliver: to the measuring consumer)"
                )
                print(
                    f"  event loop (worker, producer and reader share it): a 10 ms sleep woke late by p99 "
                    f"{ms(r['loop_lag_p99'])}, max {ms(r['loop_lag_max'])}",
                    flush=True,
                )
    finally:
        broker.stop()

    print("\n== summary ==")
    rows = [
        ("worker, events/s incl. join", f(wr.get("rate_with_join"))),
        ("worker, events/s excl. join", f(wr.get("rate_no_join"))),
        ("worker, group join (start -> first batch)", f(wr["join_s"], "{:.2f} s")),
        ("bare aiokafka + json.loads, events/s", f(br["rate_no_start"])),
        ("worker / bare", f(ratio, "{:.2f}")),
    ]
    for r in lat:
        rows.append((f"alert latency p50 / p99, {r['scenario']}", f"{ms(r['p50'])} / {ms(r['p99'])}  (n={r['n']})"))
        rows.append((f"  bare consumer p50 / p99, {r['scenario']}", f"{ms(r['bare_p50'])} / {ms(r['bare_p99'])}"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(
        f"\nmachine: {os.cpu_count()} cores, Python {platform.python_version()} ({platform.machine()}, "
        f"{platform.system()} {platform.release()}); events {a.events:,}, rate {a.rate:,.0f}/s; "
        f"total {time.perf_counter() - T0:.0f} s; load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="backlog size for the throughput runs")
    ap.add_argument("--latency-seconds", type=float, default=60, help="steady scenario length (0 = skip)")
    ap.add_argument("--variant-seconds", type=float, default=20, help="sparse/idle complaint scenarios (0 = skip)")
    ap.add_argument("--rate", type=float, default=2000, help="paced events/s for the latency runs")
    ap.add_argument("--inject-rate", type=float, default=3, help="negative-stock injections per second")
    ap.add_argument("--sparse-complaints", type=float, default=0.5, help="complaints/s in the sparse scenario")
    ap.add_argument("--warmup", type=float, default=5, help="seconds of alerts left out of latency percentiles")
    ap.add_argument(
        "--fetch-max-wait-ms", type=int, default=None, help="override the worker's fetch wait (experiments)"
    )
    ap.add_argument("--live-delay-ms", type=int, default=None, help="override PARTITION_LIVE_DELAY (experiments)")
    ap.add_argument("--timeout", type=float, default=150, help="give up on a throughput run after this many s")
    args = ap.parse_args()
    if args.fetch_max_wait_ms is not None:
        Direct.fetch_max_wait_ms = args.fetch_max_wait_ms
    LIVE_DELAY_MS = args.live_delay_ms
    print(
        f"worker fetch_max_wait_ms {args.fetch_max_wait_ms or 'default'}, partition live delay "
        f"{'default' if args.live_delay_ms is None else str(args.live_delay_ms) + ' ms'}",
        flush=True,
    )
    asyncio.run(main(args))
