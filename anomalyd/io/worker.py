"""The streaming worker: Kafka in, the engine, Kafka out.

Built directly on aiokafka (the client faust-streaming wraps); see
notes/streaming.md for the measurements behind that choice. Guarantees:

- At least once. Outputs are flushed to Kafka *before* a snapshot records
  the input positions they came from; after a crash the worker resumes from
  the last snapshot and produces the same records again with the same ids.
- State survives restarts: the snapshot holds the engine state, the reorder
  buffer and the positions, and the consumer seeks to those positions.
- One time-ordered stream: a ReorderBuffer releases events in `ts` order
  across partitions, so the output equals `anomalyd replay` on the same data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from ..engine import snapshot
from ..engine.engine import Engine
from ..engine.rules.loader import RuleLoadError, RuleSet, load_rules
from ..engine.timeutil import format_duration, format_ts, parse_ts
from .kafkalog import quiet_aiokafka
from .ordering import ReorderBuffer
from .snapshots import SnapshotFile

log = logging.getLogger("anomalyd.worker")

# getmany() does not tell an outage from a quiet stream: it returns empty
# batches either way (aiokafka #1073). After this long without a fetch
# response the worker asks the broker for metadata, and calls it down if that
# gets no answer in the same time.
BROKER_SILENCE_S = 3.0
# A checkpoint waits this long for the broker to acknowledge outputs or a
# commit, then tries again later: the loop (and /healthz) keeps turning.
KAFKA_WAIT_S = 10.0
# How long a fetch may wait at the broker for data. Tansu does not answer a
# waiting fetch when data arrives (measured: p50 7.5 ms, max 25 ms of added
# delay at 50 ms), so this bounds part of the event-to-alert latency.
FETCH_MAX_WAIT_MS = 50
DEAD_LOG_S = 10.0  # dead letters are logged at most this often, counted by reason
INF = float("inf")


class OutputNotDelivered(RuntimeError):
    """Kafka refused or expired an output (aiokafka expires a batch it could not
    deliver in request_timeout_ms, 40 s). No snapshot may pass it: the process
    stops, and its restart produces the output again from the last snapshot."""


def figures(eng: Engine) -> dict:
    """An engine's cumulative counts, as plain nested dicts."""
    return {"consumed": dict(eng.consumed), "invalid": dict(eng.invalid), "late": eng.late,
            "out_of_order": eng.disorder,
            "alerts": {rid: dict(r.life.counts) for rid, r in eng.runners.items()},
            "commands": {rid: dict(r.life.commands) for rid, r in eng.runners.items()},
            "evicted": {rid: r.evicted() for rid, r in eng.runners.items()},
            "alerts_evicted": {rid: r.life.evicted for rid, r in eng.runners.items()},
            "expr_errors": {rid: r.expr_errors() for rid, r in eng.runners.items()},
            "distinct_capped": {rid: r.capped() for rid, r in eng.runners.items() if hasattr(r, "capped")},
            "outcomes": {rid: dict(zip(("matched", "mismatched", "missed"), r.outcomes))
                         for rid, r in eng.runners.items() if hasattr(r, "outcomes")}}


def _combine(a: Any, b: Any, sign: int) -> Any:
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        return {k: _combine(a.get(k), b.get(k), sign) for k in a.keys() | b.keys()}
    return (a or 0) + sign * (b or 0)


def subtract(a: dict, b: dict) -> dict:
    return _combine(a, b, -1)


def add(a: dict, b: dict) -> dict:
    return _combine(a, b, 1)


def gauges(engines: list[Engine], buffered: int) -> dict:
    """Point-in-time figures summed over engines (one, or one per shard)."""
    rules: dict[str, dict] = {}
    for eng in engines:
        for rid, r in eng.runners.items():
            g = rules.setdefault(rid, {"mode": r.rule.mode, "groups": 0, "firing": 0, "open": 0})
            g["groups"] += r.groups()
            g["firing"] += len(r.life.active)
            g["open"] += len(r.life.scopes)
    first = engines[0] if engines else None
    return {"rules": rules, "buffered": buffered,
            "lifetime": sum(sum(e.consumed.values()) + sum(e.invalid.values()) for e in engines),
            "rules_loaded": len(first.runners) if first else 0,
            "version": first.ruleset_version if first else "",
            "stream_time": max((e.clock.now for e in engines), default=-1)}


class Hooks:
    """Observation points for the metrics surface (no-ops by default)."""

    def alert_latency(self, seconds: float) -> None: ...
    def batch(self, seconds: float, records: int) -> None: ...
    def snapshot(self, seconds: float, size: int) -> None: ...
    def reload(self, ok: bool) -> None: ...


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: "Worker"):
        self.w = worker

    async def on_partitions_revoked(self, revoked):
        if revoked and self.w.engine_ready:
            await self.w.checkpoint("rebalance")
        self.w.buffer.revoke([(tp.topic, tp.partition) for tp in revoked])
        for tp in revoked:
            self.w.assigned.discard(tp)
            self.w.paused.discard(tp)

    async def on_partitions_assigned(self, assigned):
        w = self.w
        for tp in assigned:
            w.assigned.add(tp)
            pos = w.positions.get((tp.topic, tp.partition))
            if pos is not None:
                w.consumer.seek(tp, pos)  # resume exactly where the snapshot left off
        w.buffer.assign([(tp.topic, tp.partition) for tp in assigned])
        w.assigned_once = True
        log.info("assigned %d partitions", len(assigned))


class Worker:
    def __init__(self, *, bootstrap: str, engine: Engine, input_topics: dict[str, str],
                 output_topics: dict[str, str], group_id: str, snapshots: SnapshotFile,
                 snapshot_interval_s: float = 5.0, session_timeout_ms: int = 6000,
                 security: dict | None = None, client_id: str = "anomalyd", hooks: Hooks | None = None,
                 log_alerts: bool = True, partition_idle_s: float = 0.5, partition_live_delay_ms: int = 50,
                 alert_sink: Any = None,
                 max_buffer: int = 20_000):
        self.bootstrap = bootstrap
        self.engine = engine
        self.input_topics = input_topics
        self.output_topics = output_topics
        self.group_id = group_id
        self.snapshots = snapshots
        self.snapshot_interval_s = snapshot_interval_s
        self.session_timeout_ms = session_timeout_ms
        self.security = security or {}
        self.client_id = client_id
        self.hooks = hooks or Hooks()
        self.log_alerts = log_alerts
        self.alert_sink = alert_sink  # e.g. the Alertmanager forwarder: submit(alert) never blocks
        self.lag: dict[tuple[str, int], int] = {}
        self.baseline: dict | None = None
        self.max_buffer = max_buffer
        self.paused: set[TopicPartition] = set()
        self.held_since = self.stall_logged = self.fetch_checked = time.monotonic()
        self.fetch_stall_s = 10.0  # a partition not fetched this long while others are is resumed
        self.loop_started = False
        self.started_at = time.monotonic()
        self.buffer = ReorderBuffer(partition_idle_s, live_delay_ms=partition_live_delay_ms)
        self.positions: dict[tuple[str, int], int] = {}
        self.assigned: set[TopicPartition] = set()
        self.assigned_once = False
        self.engine_ready = False
        self.stopping = asyncio.Event()
        self.last_loop = time.monotonic()
        self.broker_seen = 0.0  # monotonic time the broker last answered (a fetch or a probe)
        self.broker_down_since: float | None = None  # set while it does not answer
        self.tick = time.monotonic()  # the event loop turns (set by the broker watch)
        self.undelivered: str | None = None
        self._watch: asyncio.Task | None = None
        self._commits: dict[int, asyncio.Future] = {}  # per consumer: the commit that may still wait
        self.records = 0
        self.produced: dict[str, int] = {}
        # Dead letters are logged counted by reason, at most once per DEAD_LOG_S.
        self.dead_counts: dict[str, int] = {}
        self.dead_since: float | None = None
        self.dead_logged = -DEAD_LOG_S
        self.pending_reload: RuleSet | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    # -- state ---------------------------------------------------------------
    def restore(self) -> None:
        data = self.snapshots.read()
        if data is None:
            log.info("no snapshot: starting from committed offsets")
            return
        try:
            extra, report = snapshot.load(self.engine, data)
        except Exception as exc:  # a damaged file must not stop the service
            log.error("snapshot %s unreadable (%s): starting from committed offsets", self.snapshots.path, exc)
            return
        self.positions = {(t, p): o for t, p, o in extra["positions"]}
        for source, topic, partition, offset, key, raw in extra["buffer"]:
            ev, _ = self.engine.decode_record(source, raw, topic, partition, offset, key)
            if ev is not None:
                self.buffer.push((topic, partition), ev.ts, (source, ev, topic, partition, offset, key, raw))
        log.info("restored snapshot: %d rules with state, %d fresh, %d buffered, positions %s",
                 len(report["restored"]), len(report["fresh"]), len(self.buffer), sorted(self.positions.items()))

    def _figures(self) -> dict:
        return figures(self.engine)

    # -- what the metrics surface reads -----------------------------------------
    def counters(self) -> dict:
        """This process's counts (restored figures are not this process's)."""
        return subtract(self._figures(), self.baseline or {})

    def gauges(self) -> dict:
        return gauges([self.engine], len(self.buffer))

    async def checkpoint(self, why: str = "interval") -> None:
        """Flush outputs, then record state + positions, then commit offsets."""
        t = time.monotonic()
        if why == "interval" and not self.broker_ok:
            return  # nothing can be flushed or committed: the snapshot waits for the broker
        if not await self.flush_outputs(why):
            return
        buffered = [(src, topic, part, off, key, raw) for src, _ev, topic, part, off, key, raw in self.buffer.items()]  # sorted once
        extra = {"positions": [(t_, p, o) for (t_, p), o in self.positions.items()], "buffer": buffered}
        data = snapshot.dump(self.engine, extra)
        await asyncio.get_running_loop().run_in_executor(None, self.snapshots.write, data)
        # Offsets committed to Kafka are for lag monitoring and for a lost
        # snapshot file; they never pass a record still in the buffer.
        commit = {}
        low: dict[tuple[str, int], int] = {}
        for _s, topic, part, off, _k, _r in buffered:
            low[(topic, part)] = min(off, low.get((topic, part), off))
        for tp in self.assigned:
            pos = self.positions.get((tp.topic, tp.partition))
            if pos is not None:
                commit[tp] = min(pos, low.get((tp.topic, tp.partition), pos))
        if commit:
            await self.commit_offsets(commit)
        self.hooks.snapshot(time.monotonic() - t, len(data))
        log.debug("checkpoint (%s): %d bytes in %.3fs", why, len(data), time.monotonic() - t)

    async def flush_outputs(self, why: str) -> bool:
        """True once Kafka has acknowledged every output so far; False if it has
        not within KAFKA_WAIT_S (the flush goes on; the caller tries later).
        Raises OutputNotDelivered if an output failed."""
        try:
            await asyncio.wait_for(asyncio.shield(self.producer.flush()), KAFKA_WAIT_S)
        except asyncio.TimeoutError:
            log.warning("checkpoint (%s) postponed: outputs not acknowledged within %.0fs", why, KAFKA_WAIT_S)
            return False
        if self.undelivered is not None:
            raise OutputNotDelivered(f"an output was not delivered to Kafka ({self.undelivered}); stopping "
                                     f"without a checkpoint so that a restart produces it again")
        return True

    async def commit_offsets(self, offsets: dict, consumer: AIOKafkaConsumer | None = None) -> None:
        """Commit, waiting at most KAFKA_WAIT_S (aiokafka's commit waits for the
        group coordinator for ever). A commit still waiting is left to finish,
        not cancelled (its request may be on the wire), and none other starts
        meanwhile, so commits land in order."""
        consumer = consumer or self.consumer
        prev = self._commits.get(id(consumer))
        if prev is not None and not prev.done():
            log.warning("offset commit skipped: the previous one still waits for the broker")
            return
        task = self._commits[id(consumer)] = asyncio.ensure_future(consumer.commit(offsets))
        task.add_done_callback(self._committed)
        done, _ = await asyncio.wait({task}, timeout=KAFKA_WAIT_S)
        if not done:
            log.warning("offset commit not answered within %.0fs; state is safe in the snapshot", KAFKA_WAIT_S)

    @staticmethod
    def _committed(task: asyncio.Future) -> None:
        if not task.cancelled() and task.exception() is not None:  # e.g. during a rebalance
            log.warning("offset commit failed (%s); state is safe in the snapshot", task.exception())

    def _delivered(self, fut: asyncio.Future) -> None:
        if self.undelivered is None and not fut.cancelled() and fut.exception() is not None:
            self.undelivered = repr(fut.exception())
            log.critical("an output was not delivered to Kafka: %s", self.undelivered)

    @property
    def broker_ok(self) -> bool:
        return self.broker_seen > 0 and self.broker_down_since is None

    async def _watch_broker(self) -> None:
        """Fresh fetch responses say the broker answers; after BROKER_SILENCE_S
        without one, a metadata request decides. Logs when it stops and starts
        answering (aiokafka's own errors are held to one per kind per 30 s)."""
        newest, probed = 0, 0.0
        while True:
            await asyncio.sleep(0.5)
            now = self.tick = time.monotonic()
            polled = newest
            for tp in list(self.assigned):
                try:
                    polled = max(polled, self.consumer.last_poll_timestamp(tp) or 0)
                except Exception:  # revoked meanwhile
                    pass
            if polled > newest:
                newest, self.broker_seen = polled, now
            elif now - self.broker_seen > BROKER_SILENCE_S and now - probed >= BROKER_SILENCE_S:
                probed = now
                try:
                    await asyncio.wait_for(self.consumer.topics(), BROKER_SILENCE_S)
                    self.broker_seen = time.monotonic()
                except Exception as exc:
                    if self.broker_down_since is None:
                        self.broker_down_since = self.broker_seen
                        log.error("Kafka broker not answering for %.0fs (%s): waiting for it, not ready",
                                  time.monotonic() - self.broker_seen, repr(exc) if str(exc) == "" else exc)
            if self.broker_down_since is not None and self.broker_seen > self.broker_down_since:
                log.warning("Kafka broker answering again after %.1fs", self.broker_seen - self.broker_down_since)
                self.broker_down_since = None

    # -- output ----------------------------------------------------------------
    async def emit(self, outs: list) -> None:
        now = time.time()
        for kind, key, value in outs:
            topic = self.output_topics[kind]
            fut = await self.producer.send(topic, key=key.encode(), value=json.dumps(value, separators=(",", ":")).encode())
            fut.add_done_callback(self._delivered)
            self.produced[kind] = self.produced.get(kind, 0) + 1
            if kind == "dead-letter":
                code = value.get("reason_code", "?")
                self.dead_counts[code] = self.dead_counts.get(code, 0) + 1
                if self.dead_since is None:
                    self.dead_since = time.monotonic()
            elif kind in ("alerts", "alerts-shadow"):
                self.hooks.alert_latency(max(0.0, now - parse_ts(value["ts"]) / 1000))
                if kind == "alerts" and self.alert_sink is not None:
                    self.alert_sink.submit(value)
                if self.log_alerts:
                    log.warning("%s %s %s %s: %s", kind[:-1], value["status"].upper(), value["rule_id"],
                                json.dumps(value["group"]), value["message"])
            elif kind == "breaker-commands" and self.log_alerts:
                log.warning("breaker %s %s %s", value["action"].upper(), value["breaker"], json.dumps(value["scope"]))
        self.log_dead_letters()

    def log_dead_letters(self, clock: Callable[[], float] = time.monotonic) -> None:
        """One line for the dead letters since the last, at most every
        DEAD_LOG_S: a flood of bad records is one line, not one each."""
        now = clock()
        if not self.dead_counts or now - self.dead_logged < DEAD_LOG_S:
            return
        n = sum(self.dead_counts.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_counts.items(), key=lambda kv: (-kv[1], kv[0])))
        span = format_duration(max(1000, int((now - (self.dead_since or now)) * 1000) // 1000 * 1000))
        log.warning("dead-lettered %d record%s in the last %s (%s); see the dead-letter topic", n,
                    "" if n == 1 else "s", span, reasons)
        self.dead_counts, self.dead_since, self.dead_logged = {}, None, now

    # -- main loop ---------------------------------------------------------------
    async def run(self) -> None:
        common = dict(bootstrap_servers=self.bootstrap, client_id=self.client_id, **self.security)
        self.producer = AIOKafkaProducer(acks="all", linger_ms=5, enable_idempotence=False, **common)
        self.consumer = AIOKafkaConsumer(
            group_id=self.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms, heartbeat_interval_ms=max(500, self.session_timeout_ms // 6),
            rebalance_timeout_ms=self.session_timeout_ms, max_poll_records=5000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS, **common)
        quiet_aiokafka()
        self.restore()
        self.baseline = self._figures()  # metrics count from here (see surfaces/metrics.py)
        self.engine_ready = True
        await self.producer.start()
        try:
            await self.consumer.start()
            self.broker_seen = time.monotonic()
            self._watch = asyncio.create_task(self._watch_broker())
            self.consumer.subscribe(self.subscription(), listener=self.listener())
            await self.on_started()
            last_snap = time.monotonic()
            self.loop_started = True
            while not self.stopping.is_set():
                self.last_loop = time.monotonic()
                if self.pending_reload is not None:
                    self._apply_reload()
                try:
                    # Poll briskly while events wait for a quiet partition's grace period.
                    batch = await self.consumer.getmany(timeout_ms=20 if self.pending() else 200, max_records=5000)
                except Exception as exc:
                    log.error("fetch failed: %s", exc)
                    await asyncio.sleep(1)
                    continue
                if not batch and not self.pending():
                    self.idle_turn()
                if batch or self.pending():
                    await self._process(batch)
                if time.monotonic() - last_snap >= self.snapshot_interval_s:
                    await self.checkpoint()
                    last_snap = time.monotonic()
        finally:
            await self.on_stopping()
            try:
                if self.engine_ready and self.consumer is not None and self.assigned:
                    await asyncio.wait_for(self.checkpoint("shutdown"), timeout=5)
            except Exception as exc:
                log.error("final checkpoint failed: %s", exc)
            await self._close()

    async def on_started(self) -> None:
        """Connected and subscribed (the scale-out worker starts its router here)."""

    async def on_stopping(self) -> None:
        """Before the final checkpoint."""

    def pending(self) -> int:
        return len(self.buffer)

    def subscription(self) -> list[str]:
        return list(self.input_topics)

    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    async def _close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), timeout=3)
                except Exception as exc:
                    log.warning("closing %s: %s", type(client).__name__, exc)

    async def _process(self, batch: dict) -> None:
        t = time.perf_counter()
        engine, buffer = self.engine, self.buffer
        outs: list = []
        n = 0
        for tp, recs in batch.items():
            source = self.input_topics[tp.topic]
            part = (tp.topic, tp.partition)
            for rec in recs:
                ev, dead = engine.decode_record(source, rec.value if rec.value is not None else b"",
                                                tp.topic, tp.partition, rec.offset, rec.key)
                if dead is not None:
                    outs.append(dead)
                elif engine.too_far_ahead(ev.ts):
                    outs.append(engine.refuse_future(source, ev, rec.value, tp.topic, partition=tp.partition,
                                                     offset=rec.offset, key=rec.key))
                else:
                    buffer.push(part, ev.ts, (source, ev, tp.topic, tp.partition, rec.offset,
                                              rec.key.decode("utf-8", "replace") if rec.key else None, rec.value))
            n += len(recs)
            if recs:
                self.positions[part] = recs[-1].offset + 1
        for tp in list(self.assigned):
            hw = self.consumer.highwater(tp)
            if hw is None:
                continue  # not fetched yet: its state is unknown, it holds the watermark
            part = (tp.topic, tp.partition)
            pos = self.positions.get(part)
            if pos is not None:
                self.lag[part] = max(0, hw - pos)
            if pos is None:
                try:  # nothing delivered yet: where is the consumer (committed offset)?
                    pos = await self.consumer.position(tp)
                except Exception:
                    continue
                self.positions[part] = pos
            buffer.set_caught_up(part, pos >= hw)
        released = 0
        for source, ev, *_ in buffer.ready():
            outs.extend(engine.process_event(source, ev))
            released += 1
        self._flow_control()
        self._stall_check(released > 0)
        self._fetch_watch()
        if outs:
            await self.emit(outs)
        self.records += n
        self.hooks.batch(time.perf_counter() - t, n)

    def idle_turn(self) -> None:
        """A loop turn with no records and none held: the stall timer starts
        again (events arriving after an idle hour are not "held for 1h"), and
        dead letters counted since the last line are logged when due."""
        self.held_since = time.monotonic()
        self.log_dead_letters()

    def _stall_check(self, moved: bool) -> None:
        """Say once a minute why events are held, when they have been held
        for 10 s: which partition holds the watermark, and in what state."""
        now = time.monotonic()
        if moved or not len(self.buffer):
            self.held_since = now
            return
        if now - self.held_since < 10 or now - self.stall_logged < 60:
            return
        self.stall_logged = now
        buf = self.buffer
        w = buf.watermark()
        holders = [p for p, m in buf.part_max.items() if m == w]
        paused = {(tp.topic, tp.partition) for tp in self.consumer.paused()}
        since = [None if buf.caught_up.get(p) is None else format_duration(int((now - buf.caught_up[p]) * 1000) // 1000 * 1000 or 1000) + " ago"
                 for p in holders]
        log.warning("events held for %s: %d buffered, event time %s held by %s (caught up: %s, lag %s, "
                    "paused in the consumer %s); %d partitions paused by flow control",
                    format_duration(int(now - self.held_since) * 1000 or 1000), len(buf),
                    format_ts(int(w)) if w not in (INF, -INF) else w, holders, since,
                    [self.lag.get(p) for p in holders], [p in paused for p in holders], len(self.paused))

    def _fetch_watch(self) -> None:
        """Every partition we have not paused must be fetched. If the client
        has fetched others for `fetch_stall_s` (10 s) but not this one (its high watermark then
        goes stale: the partition would look caught up and idle, and its
        events would never come), resume it and seek it to its position,
        which restarts its fetch state. Seen once: a soak under heavy CPU
        contention stalled for minutes behind one partition."""
        now = time.monotonic()
        if now - self.fetch_checked < self.fetch_stall_s / 2:
            return
        self.fetch_checked = now
        polled = {}
        for tp in self.assigned:
            try:
                polled[tp] = self.consumer.last_poll_timestamp(tp)
            except Exception:
                pass
        fresh = max((t for t in polled.values() if t is not None), default=None)
        if fresh is None:
            return
        for tp, t in polled.items():
            pos = self.positions.get((tp.topic, tp.partition))
            if tp in self.paused or t is None or fresh - t < self.fetch_stall_s * 1000 or pos is None:
                continue
            log.warning("partition %s:%d not fetched for %.0fs while others are: resuming it at offset %d",
                        tp.topic, tp.partition, (fresh - t) / 1000, pos)
            self.consumer.resume(tp)
            self.consumer.seek(tp, pos)

    def _flow_control(self) -> None:
        """Keep the reorder buffer bounded. Busy partitions keep the fetcher's
        buffers full and can starve the one partition that holds the
        watermark; when the buffer grows large, pause every partition that is
        ahead of the watermark, so the consumer fetches the one behind."""
        buffer = self.buffer
        if len(buffer) <= self.max_buffer // 2:
            ahead: set = set()
        elif len(buffer) > self.max_buffer or self.paused:
            # Recomputed every time: the partition at the watermark changes,
            # and it must never stay paused (that would stall everything).
            w = buffer.watermark()
            ahead = {tp for tp in self.assigned
                     if buffer.part_max.get((tp.topic, tp.partition), float("-inf")) > w}
            if len(buffer) <= self.max_buffer:
                ahead &= self.paused  # between the marks: only keep pauses still ahead
        else:
            return
        resume = self.paused - ahead
        pause = ahead - self.paused
        if resume:
            self.consumer.resume(*(resume & self.assigned))
        if pause:
            self.consumer.pause(*pause)
        self.paused = ahead

    # -- rules ---------------------------------------------------------------------
    def request_reload(self, ruleset: RuleSet) -> None:
        self.pending_reload = ruleset  # applied between batches: the swap is atomic

    def _apply_reload(self) -> None:
        rs, self.pending_reload = self.pending_reload, None
        report = self.engine.replace_rules(rs)
        log.info("rules reloaded (version %s): kept %s, added %s, changed %s, removed %s",
                 rs.version, report["kept"], report["added"], report["changed"], report["removed"])

    @property
    def ready(self) -> bool:
        return self.engine_ready and self.assigned_once and bool(self.assigned) and self.broker_ok

    @property
    def alive(self) -> bool:
        now = time.monotonic()
        if not self.loop_started:  # restoring a large snapshot or connecting: alive for 10 minutes
            return now - self.started_at < 600
        if now - self.last_loop < 30:
            return True
        # Held up by an unreachable broker is waiting, not wedged (a restart
        # would not bring the broker back), as long as the event loop turns.
        return self.broker_down_since is not None and now - self.tick < 30


class RulesWatcher:
    """Polls a rules directory; a changed set is validated in full before use."""

    def __init__(self, directory, on_good: Callable[[RuleSet], Any], on_bad: Callable[[list], Any]):
        from pathlib import Path

        self.dir = Path(directory)
        self.on_good, self.on_bad = on_good, on_bad
        self.seen = self._stamp()
        self.valid = True  # does the directory as it is now load?

    def _stamp(self) -> tuple:
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                for p in self.dir.iterdir() if p.suffix in (".yaml", ".yml")))
        except OSError:
            return ()

    def check(self, force: bool = False) -> None:
        stamp = self._stamp()
        if stamp == self.seen and not force:
            return
        self.seen = stamp
        try:
            rs = load_rules(self.dir)
        except RuleLoadError as exc:
            self.valid = False
            self.on_bad(exc.errors)
            return
        self.valid = True
        self.on_good(rs)
