"""Soak: simulated traffic at a steady rate through `anomalyd run` (a real
subprocess) and a Kafka broker for a long time; memory, latency and lag
sampled every minute.

    python bench/bench_soak.py [--duration 3600] [--rate 2000] [--sample 60]
                               [--bootstrap HOST:PORT] [--partitions 4]

Without --bootstrap an embedded Tansu broker (in-memory storage) is started.
The service runs as tests/io/service.py runs it: its own topic names, group,
state dir and metrics port, default rules, default snapshot interval (5s).

The producer batches with --linger-ms (default 100): Tansu 0.6's in-memory
storage gets slower to fetch from as a partition holds more batches, and at
linger 5 ms (about one record per batch at 2,000 events/s over 16 partitions)
its fetches took seconds after ~15 minutes and the worker stalled (see
bench/README.md). Latency figures include the time a record waits in the
producer (up to --linger-ms), as with any batching producer.

Traffic: `anomalyd simulate`'s generator (all four sources, labelled injected
anomalies) paced on its own event-time offsets at --rate events/s, each event's
`ts` rewritten to the wall clock when it is sent, so latency is meaningful.
On top, every --inject-every seconds a negative-stock event on one of 64
`SOAK-` SKUs (fires negative-stock) and a restock of it 1 s later (resolves
it): alerts arrive all the time, on a bounded set of groups.

Every --sample seconds one row: worker RSS (/proc/PID/status), the broker's
RSS, consumer lag (sum of the service's anomalyd_consumer_lag_records),
records acknowledged by the broker minus events processed ("behind"), events
processed in the interval, dead letters, reorder buffer, live groups, alerts
read from the alerts topic in the interval and their latency (wall clock when
this script's consumer reads the alert minus the alert's `ts`: p50/p99/max),
the service's own latency histogram (emit minus ts) as p50/p99 estimated
from the bucket deltas of the interval, the time from the producer's send()
to the broker's acknowledgement (ack p50/p99), and a probe of the broker
alone: a plain consumer, no group, tailing every input partition for 5 s,
send() to arrival per record (tail p50/p99). If the probe's latency grows
with the service's, the broker is what slows down.

The summary: drift between the first and the last --drift-window seconds
(RSS, p99 latency, lag), records produced vs processed (lost), dead letters,
crashes (service exited before it was told to stop), exit status on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from anomalyd.engine.timeutil import parse_ts  # noqa: E402
from anomalyd.kafkatools.envelopes import KEY_FIELD  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402
from tests.io.service import Service  # noqa: E402

INJECT_SKUS = 64


def rss_mb(pid: int | None) -> tuple[float | None, float | None]:
    """(VmRSS, VmHWM) in MB of a live process, (None, None) otherwise."""
    if not pid:
        return None, None
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    vals = {}
    for ln in text.splitlines():
        if ln.startswith(("VmRSS:", "VmHWM:")):
            k, v = ln.split(":", 1)
            vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS"), vals.get("VmHWM")


def parse_metrics(text: str) -> dict:
    """The figures the soak needs from a Prometheus text page."""
    m = {
        "processed": 0.0,
        "lag": 0.0,
        "dead": 0.0,
        "buffer": 0.0,
        "groups": 0.0,
        "alerts": 0.0,
        "buckets": {},
        "hist_count": 0.0,
    }
    for ln in text.splitlines():
        if not ln or ln[0] == "#":
            continue
        name_labels, _, val = ln.rpartition(" ")
        try:
            v = float(val)
        except ValueError:
            continue
        name = name_labels.split("{", 1)[0]
        if name == "anomalyd_events_processed_lifetime":
            m["processed"] += v
        elif name == "anomalyd_consumer_lag_records":
            m["lag"] += v
        elif name == "anomalyd_events_invalid_total":
            m["dead"] += v
        elif name == "anomalyd_reorder_buffer_events":
            m["buffer"] += v
        elif name == "anomalyd_rule_groups":
            m["groups"] += v
        elif name == "anomalyd_alerts_total":
            m["alerts"] += v
        elif name == "anomalyd_event_to_alert_latency_seconds_bucket":
            le = name_labels.split('le="', 1)[1].split('"', 1)[0]
            m["buckets"][float(le)] = v
        elif name == "anomalyd_event_to_alert_latency_seconds_count":
            m["hist_count"] = v
    return m


def bucket_quantile(now: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """Prometheus histogram_quantile over the bucket deltas between two scrapes."""
    delta = sorted((le, now.get(le, 0) - before.get(le, 0)) for le in now)
    if not delta or delta[-1][1] <= 0:
        return None
    rank = q * delta[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in delta:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
        prev_le, prev_c = le, c
    return None


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


class AlertReader(threading.Thread):
    """Reads the alerts topic from the beginning; latency = read time - alert ts."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        super().__init__(daemon=True)
        self.c = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.c.assign(tps)
        self.c.seek_to_beginning(*tps)
        self.lock = threading.Lock()
        self.new: list[tuple[float, str, str]] = []  # (latency s, rule_id, status)
        self.total = 0
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.c.poll(timeout_ms=100)
                now = time.time()
                got = []
                for recs in batch.values():
                    for r in recs:
                        v = json.loads(r.value)
                        got.append((now - parse_ts(v["ts"]) / 1000, v.get("rule_id", "?"), v.get("status", "?")))
                if got:
                    with self.lock:
                        self.new += got
                        self.total += len(got)
        except Exception as e:  # reported in the summary
            self.error = repr(e)
        finally:
            self.c.close()

    def take(self) -> list[tuple[float, str, str]]:
        with self.lock:
            out, self.new = self.new, []
        return out


class BrokerProbe(threading.Thread):
    """The broker alone, apart from the service: every `every` seconds a plain
    kafka-python consumer (no group) tails every input partition for
    `window` seconds and measures, per record, the time from the producer's
    send() (the record's create time) to its arrival. If that grows like the
    service's latency, the delay is the broker's, not the service's."""

    def __init__(self, bootstrap: str, topics: list[str], partitions: int, every: float, window: float = 5.0):
        super().__init__(daemon=True)
        self.c = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.c.assign(self.tps)
        self.every, self.window = every, window
        self.last: tuple[float | None, float | None] = (None, None)  # p50, p99 in s
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(max(0.0, self.every - self.window)):
            try:
                self.c.seek_to_end(*self.tps)
                self.c.poll(timeout_ms=0)
                lat: list[float] = []
                t = time.time()
                while time.time() - t < self.window and not self.stop.is_set():
                    recs = self.c.poll(timeout_ms=100)
                    now = time.time() * 1000
                    lat += [(now - r.timestamp) / 1000 for rs in recs.values() for r in rs]
                self.last = (pct(lat, 0.5), pct(lat, 0.99))
            except Exception:  # a failed probe shows as '-'
                self.last = (None, None)
        self.c.close()


class Producer:
    """kafka-python producer; counts records the broker acknowledged."""

    def __init__(self, bootstrap: str, topics: dict[str, str], linger_ms: int = 100):
        self.p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=1)
        self.topics = topics
        self.lock = threading.Lock()
        self.sent = self.acked = self.failed = 0
        self.labelled = 0
        self.ack_lat: list[float] = []  # s from send() to the broker's acknowledgement, since the last take

    def _ok(self, md) -> None:
        now_ms = time.time() * 1000
        with self.lock:
            self.acked += 1
            if md.timestamp and md.timestamp > 0:  # the create time the producer stamped at send()
                self.ack_lat.append((now_ms - md.timestamp) / 1000)

    def _err(self, _exc) -> None:
        with self.lock:
            self.failed += 1

    def send(self, source: str, value: dict) -> None:
        value["ts"] = int(time.time() * 1000)
        key = value.get(KEY_FIELD[source])
        f = self.p.send(
            self.topics[source],
            key=str(key).encode() if key is not None else None,
            value=json.dumps(value, separators=(",", ":")).encode(),
        )
        f.add_callback(self._ok)
        f.add_errback(self._err)
        self.sent += 1


def fmt(v, spec: str = "{:,.0f}") -> str:
    return "-" if v is None else spec.format(v)


def ms(v) -> str:
    return "-" if v is None else f"{v * 1000:,.0f}"


def soak(
    bootstrap: str,
    workdir: Path,
    *,
    duration: float = 3600,
    rate: float = 2000,
    sample_s: float = 60,
    inject_every: float = 2.0,
    partitions: int = 4,
    seed: int = 17,
    drift_s: float = 600,
    linger_ms: int = 100,
    broker_pid: int | None = None,
    out=print,
) -> dict:
    """Run one soak; print a row per sample and a summary; return the figures."""
    svc = Service(
        bootstrap, workdir, partitions=partitions, ANOMALYD_CHECKPOINT_INTERVAL="5s", ANOMALYD_RELOAD_INTERVAL="2s"
    )
    res: dict = {"crashes": 0, "rows": [], "error": None}
    t_start = time.time()
    svc.start()
    try:
        svc.wait_ready(timeout=60)
    except BaseException:
        svc.stop()
        raise
    out(
        f"service pid {svc.proc.pid} ready after {time.time() - t_start:.1f} s; topics *-{svc.tag}, "
        f"{partitions} partitions each; log {svc.logs[-1]}"
    )
    reader = AlertReader(bootstrap, svc.topics["alerts"], partitions)
    reader.start()
    prod = Producer(bootstrap, {s: svc.topics[s] for s in ("orders", "inventory", "payments", "complaints")}, linger_ms)
    probe = BrokerProbe(
        bootstrap, [svc.topics[s] for s in ("orders", "inventory", "payments", "complaints")], partitions, sample_s
    )
    probe.start()

    head = (
        f"{'min':>5} {'rss MB':>7} {'hwm MB':>7} {'brk MB':>7} {'lag':>6} {'behind':>7} {'events':>8} {'ev/s':>6} "
        f"{'dead':>4} {'buf':>6} {'groups':>7} {'alerts':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'h.p50':>6} {'h.p99':>6} {'ack p50':>7} {'ack p99':>7} {'tail p50':>8} {'tail p99':>8}"
    )
    out(head, flush=True) if out is print else out(head)
    state = {"prev": parse_metrics(""), "t_prev": time.time(), "n": 0}
    lats_all: list[tuple[float, float]] = []  # (elapsed at read, latency)

    def sample(label: str | None = None) -> dict:
        now = time.time()
        _, text = svc.get("/metrics")
        m = parse_metrics(text)
        rss, hwm = rss_mb(svc.proc.pid if svc.proc and svc.proc.poll() is None else None)
        brss, _ = rss_mb(broker_pid)
        got = reader.take()
        el = now - t0
        lats = [x[0] for x in got]
        lats_all.extend((el, x) for x in lats)
        prev, dt = state["prev"], now - state["t_prev"]
        with prod.lock:
            acked = prod.acked
            acks, prod.ack_lat = prod.ack_lat, []
        row = dict(
            t=el,
            rss=rss,
            hwm=hwm,
            broker_rss=brss,
            lag=m["lag"],
            behind=acked - m["processed"],
            events=m["processed"] - prev["processed"],
            rate=(m["processed"] - prev["processed"]) / dt if dt else 0,
            dead=m["dead"],
            buffer=m["buffer"],
            groups=m["groups"],
            alerts=len(got),
            p50=pct(lats, 0.5),
            p99=pct(lats, 0.99),
            max=max(lats) if lats else None,
            h50=bucket_quantile(m["buckets"], prev["buckets"], 0.5),
            h99=bucket_quantile(m["buckets"], prev["buckets"], 0.99),
            processed=m["processed"],
            acked=acked,
            tail50=probe.last[0],
            tail99=probe.last[1],
            ack50=pct(acks, 0.5),
            ack99=pct(acks, 0.99),
        )
        if text:  # keep the last good scrape as the baseline for deltas
            state["prev"], state["t_prev"] = m, now
        res["rows"].append(row)
        lab = label or f"{el / 60:.1f}"
        out(
            f"{lab:>5} {fmt(rss):>7} {fmt(hwm):>7} {fmt(brss):>7} {fmt(row['lag']):>6} {fmt(row['behind']):>7} "
            f"{fmt(row['events']):>8} {fmt(row['rate']):>6} {fmt(row['dead']):>4} {fmt(row['buffer']):>6} "
            f"{fmt(row['groups']):>7} {row['alerts']:>6} {ms(row['p50']):>7} {ms(row['p99']):>7} {ms(row['max']):>7} "
            f"{ms(row['h50']):>6} {ms(row['h99']):>6} {ms(row['ack50']):>7} {ms(row['ack99']):>7} {ms(row['tail50']):>8} {ms(row['tail99']):>8}"
        )
        if out is print:
            sys.stdout.flush()
        return row

    gen = generate(seed=seed, rate=rate, minutes=duration / 60 + 1)
    start_ms = None
    t0 = time.time()
    sample("0.0")
    next_sample = t0 + sample_s
    next_inject = t0 + inject_every
    restocks: list[tuple[float, str]] = []
    injected = 0
    pending = next(gen)
    try:
        while True:
            now = time.time()
            el = now - t0
            if el >= duration:
                break
            if svc.proc.poll() is not None:
                res["crashes"] += 1
                out(f"!! service exited with {svc.proc.returncode} at {el:.0f} s:\n{svc.log()[-3000:]}")
                break
            # background traffic due by now (paced on the generator's own event-time offsets)
            if start_ms is None:
                start_ms = pending["value"]["ts"]
            while (pending["value"]["ts"] - start_ms) / 1000 <= el:
                value = dict(pending["value"])
                prod.send(pending["topic"], value)
                prod.labelled += "label" in pending
                pending = next(gen)
            if now >= next_inject:
                injected += 1
                sku = f"SOAK-{injected % INJECT_SKUS:03d}"
                prod.send(
                    "inventory",
                    {
                        "event_id": f"soak-neg-{injected}",
                        "sku": sku,
                        "available": -5,
                        "warehouse": "WH-EAST",
                        "reason": "flash-sale",
                    },
                )
                restocks.append((now + 1.0, sku))
                next_inject += inject_every
            while restocks and restocks[0][0] <= now:
                _, sku = restocks.pop(0)
                prod.send(
                    "inventory",
                    {
                        "event_id": f"soak-rst-{injected}-{sku}",
                        "sku": sku,
                        "available": 400,
                        "warehouse": "WH-EAST",
                        "reason": "restock",
                    },
                )
            if now >= next_sample:
                sample()
                next_sample += sample_s
            time.sleep(0.005)
        produce_s = time.time() - t0
        for _, sku in restocks:  # resolve what is still firing
            prod.send(
                "inventory",
                {
                    "event_id": f"soak-rst-end-{sku}",
                    "sku": sku,
                    "available": 400,
                    "warehouse": "WH-EAST",
                    "reason": "restock",
                },
            )
        prod.p.flush(timeout=60)
        # Drain: every acknowledged record processed, lag back to 0.
        end = time.time() + 120
        while time.time() < end and svc.proc.poll() is None:
            m = parse_metrics(svc.get("/metrics")[1])
            if m["processed"] >= prod.acked and m["lag"] == 0:
                break
            time.sleep(0.5)
        time.sleep(2.0)  # trailing alerts (idle partitions release after 500 ms)
        if svc.proc.poll() is not None and not res["crashes"]:
            res["crashes"] += 1
        final = sample("end")
    finally:
        reader.stop.set()
        probe.stop.set()
        reader.join(timeout=5)
        probe.join(timeout=70)
        prod.p.close(timeout=10)
        rc = svc.stop()
    res.update(
        produce_s=produce_s,
        sent=prod.sent,
        acked=prod.acked,
        failed=prod.failed,
        labelled=prod.labelled,
        injected=injected,
        processed=final["processed"],
        lost=prod.acked - final["processed"],
        dead=final["dead"],
        final_lag=final["lag"],
        exit_code=rc,
        alerts_read=reader.total,
        reader_error=reader.error,
        log=svc.log(),
    )

    # Drift: first vs last window (rows stamped at the end of their interval).
    rows = [r for r in res["rows"][1:-1] if r["rss"] is not None] or res["rows"][1:]
    first = [r for r in rows if r["t"] <= drift_s + 1]
    last = [r for r in rows if r["t"] > produce_s - drift_s + 1]
    lat_first = [x for t, x in lats_all if t <= drift_s + 1]
    lat_last = [x for t, x in lats_all if produce_s - drift_s + 1 < t <= produce_s + 1]

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    d = dict(
        rss_first=mean(r["rss"] for r in first),
        rss_last=mean(r["rss"] for r in last),
        rss_first_end=first[-1]["rss"] if first else None,
        rss_last_end=last[-1]["rss"] if last else None,
        hwm=max((r["hwm"] or 0) for r in res["rows"]),
        p50_first=pct(lat_first, 0.5),
        p50_last=pct(lat_last, 0.5),
        p99_first=pct(lat_first, 0.99),
        p99_last=pct(lat_last, 0.99),
        n_first=len(lat_first),
        n_last=len(lat_last),
        lag_first=mean(r["lag"] for r in first),
        lag_last=mean(r["lag"] for r in last),
        lag_max_first=max((r["lag"] for r in first), default=None),
        lag_max_last=max((r["lag"] for r in last), default=None),
        behind_first=mean(r["behind"] for r in first),
        behind_last=mean(r["behind"] for r in last),
        broker_first=mean(r["broker_rss"] for r in first),
        broker_last=mean(r["broker_rss"] for r in last),
        rate=mean(r["rate"] for r in rows),
        tail50_first=mean(r["tail50"] for r in first),
        tail50_last=mean(r["tail50"] for r in last),
        tail99_first=mean(r["tail99"] for r in first),
        tail99_last=mean(r["tail99"] for r in last),
        ack99_first=mean(r["ack99"] for r in first),
        ack99_last=mean(r["ack99"] for r in last),
    )
    res["drift"] = d
    w = drift_s / 60
    out("\n== summary ==")
    out(
        f"  produced {prod.sent:,} records in {produce_s:,.0f} s ({prod.sent / produce_s:,.0f}/s; {prod.labelled:,} labelled "
        f"anomaly events, {injected:,} negative-stock injections + restocks), acknowledged {prod.acked:,}, "
        f"producer errors {prod.failed}"
    )
    out(
        f"  processed by the service {final['processed']:,.0f}; lost {res['lost']:,.0f}; dead letters {final['dead']:,.0f}; "
        f"lag at the end {final['lag']:,.0f}"
    )
    out(
        f"  alerts read from the alerts topic {reader.total:,}; crashes {res['crashes']}; exit status on SIGTERM {rc}"
        + (f"; alert reader error {reader.error}" if reader.error else "")
    )
    out(f"  drift, first {w:g} min vs last {w:g} min:")
    out(
        f"    worker RSS mean        {fmt(d['rss_first'], '{:,.1f}')} MB -> {fmt(d['rss_last'], '{:,.1f}')} MB"
        f"   (at the window ends {fmt(d['rss_first_end'], '{:,.1f}')} -> {fmt(d['rss_last_end'], '{:,.1f}')} MB; peak VmHWM {d['hwm']:,.1f} MB)"
    )
    out(f"    alert latency p50      {ms(d['p50_first'])} ms -> {ms(d['p50_last'])} ms")
    out(
        f"    alert latency p99      {ms(d['p99_first'])} ms -> {ms(d['p99_last'])} ms   (n={d['n_first']:,} / {d['n_last']:,})"
    )
    out(
        f"    consumer lag mean/max  {fmt(d['lag_first'], '{:,.1f}')}/{fmt(d['lag_max_first'])} -> "
        f"{fmt(d['lag_last'], '{:,.1f}')}/{fmt(d['lag_max_last'])} records"
    )
    out(f"    acked - processed mean {fmt(d['behind_first'], '{:,.1f}')} -> {fmt(d['behind_last'], '{:,.1f}')} records")
    out(f"    broker RSS mean        {fmt(d['broker_first'], '{:,.1f}')} MB -> {fmt(d['broker_last'], '{:,.1f}')} MB")
    out(
        f"    broker tail p50 / p99  {ms(d['tail50_first'])} / {ms(d['tail99_first'])} ms -> {ms(d['tail50_last'])} / "
        f"{ms(d['tail99_last'])} ms   (a plain consumer tailing the input partitions, apart from the service: "
        f"send() to arrival)"
    )
    out(
        f"    producer ack p99 mean  {ms(d['ack99_first'])} ms -> {ms(d['ack99_last'])} ms   (send() to the broker's "
        f"acknowledgement: time an event spends before the service can read it)"
    )
    return res


def git_commit() -> str:
    try:
        c = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "anomalyd"], capture_output=True, text=True
        ).stdout.strip()
        if not c and (ROOT / "COMMIT").exists():  # a `git archive` copy
            return (ROOT / "COMMIT").read_text().strip() + " (git archive)"
        return c + (" (anomalyd/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=3600, help="seconds of traffic")
    ap.add_argument("--rate", type=float, default=2000, help="background events/s")
    ap.add_argument("--sample", type=float, default=60, help="seconds between rows")
    ap.add_argument("--inject-every", type=float, default=2.0, help="seconds between negative-stock injections")
    ap.add_argument("--partitions", type=int, default=4, help="partitions per topic")
    ap.add_argument("--drift-window", type=float, default=600, help="seconds compared at the start and the end")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument(
        "--linger-ms",
        type=int,
        default=100,
        help="producer linger: Tansu's memory storage slows down with the number of stored batches",
    )
    ap.add_argument("--bootstrap", help="use this broker instead of an embedded one")
    a = ap.parse_args()
    print(
        f"bench_soak: {a.duration:g} s at {a.rate:g} events/s, producer linger {a.linger_ms} ms, commit {git_commit()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()} ({platform.machine()}), "
        f"load average {os.getloadavg()[0]:.2f} (shared machine: other jobs may run)",
        flush=True,
    )
    broker = None
    if a.bootstrap:
        bootstrap = a.bootstrap
    else:
        from anomalyd.broker.embedded import EmbeddedBroker

        broker = EmbeddedBroker(port=0).start()
        bootstrap = broker.bootstrap
        print(f"embedded broker {bootstrap} (pid {broker.pid}, in-memory storage)", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            res = soak(
                bootstrap,
                Path(tmp),
                duration=a.duration,
                rate=a.rate,
                sample_s=a.sample,
                inject_every=a.inject_every,
                partitions=a.partitions,
                seed=a.seed,
                drift_s=a.drift_window,
                linger_ms=a.linger_ms,
                broker_pid=broker.pid if broker else None,
            )
            lines = res["log"].splitlines()
            warn = [
                ln
                for ln in lines
                if "Traceback" in ln
                or "ERROR" in ln
                or "CRITICAL" in ln
                or ("WARNING" in ln and not any(k in ln for k in (": alert ", ": breaker ")))
            ]
            print(
                f"  service log: {len(lines):,} lines, {len(warn)} with ERROR/CRITICAL/Traceback or a WARNING "
                f"other than the alert/breaker log lines" + ("".join(f"\n    {ln[:200]}" for ln in warn[:10]))
            )
    finally:
        if broker:
            broker.stop()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    ok = res["crashes"] == 0 and res["lost"] == 0 and res["exit_code"] == 0
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
