"""Scale-out: several workers share the input partitions and the groups.

A rule's groups span input partitions (a merchant's payments arrive keyed by
payment id), so the input partitions cannot simply be split between workers.
Every worker process runs two stages, as Kafka Streams runs sub-topologies:

1. **Router** (consumer group `<group>-router` on the input topics). It
   validates each record (refused ones go to dead-letter here, once) and sends
   it to the partition of the internal `routed` topic of every group it
   belongs to (`Engine.route`: a hash of the group key), keyed by its origin
   `topic:partition:offset`. Every `marker_s` it sends each shard a marker:
   for each input partition it owns, the next offset, the largest `ts` so far,
   the smallest `ts` since the last marker, and whether it is caught up.
   Input offsets are committed only after the producer has flushed.
2. **Shards** (consumer group `<group>` on `routed`): one engine per assigned
   partition, owning the groups that hash there. A shard holds events in a
   reorder buffer keyed by *origin* partition and releases them in `ts` order
   up to the watermark of all input partitions, learned from the markers, then
   moves its clock to that watermark, so deadlines (absence, windows ageing
   out) fire even while its own groups are quiet. A router restart re-sends
   records; the shard drops them by origin offset. An input partition whose
   router stops sending markers holds the watermark until a new owner
   reports, so a dead worker cannot make another's events look late.

A shard's snapshot (engine, buffer, origin offsets, position in `routed`) is
written to the `state` topic, keyed per shard, after the outputs are flushed
and before the offsets are committed; a shard that moves to another worker
is restored from there. Output ids are the engine's deterministic ids, so
what a crash makes a worker emit twice is recognisable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from ..engine import snapshot
from ..engine.engine import Engine
from .ordering import INF, ReorderBuffer
from .statestore import StateStore
from .worker import Worker, add, figures, gauges, subtract

log = logging.getLogger("anomalyd.sharded")

MARKER_KEY = b"~wm"
LEASE_S = 2.0  # an input partition whose router is silent this long holds the watermark again


class Router:
    """Stage 1: validate, dead-letter, route by group key, send markers."""

    def __init__(self, w: "ShardedWorker", marker_s: float = 0.05, commit_s: float = 1.0):
        self.w = w
        self.engine = w.engine  # decoding and routing only; never evaluates
        self.marker_s, self.commit_s = marker_s, commit_s
        self.origins: dict[tuple[str, int], list] = {}  # (topic, part) -> [next offset, max ts, min ts since marker]
        self.caught: dict[tuple[str, int], bool] = {}
        self.assigned: set[TopicPartition] = set()
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()
        self.ok = False
        self.records = 0

    async def run(self) -> None:
        w = self.w
        self.consumer = AIOKafkaConsumer(
            group_id=f"{w.group_id}-router", enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=w.session_timeout_ms, heartbeat_interval_ms=max(500, w.session_timeout_ms // 6),
            rebalance_timeout_ms=w.session_timeout_ms, max_poll_records=5000, fetch_max_wait_ms=20,
            bootstrap_servers=w.bootstrap, client_id=f"{w.client_id}-router", **w.security)
        await self.consumer.start()
        self.consumer.subscribe(list(w.input_topics), listener=_RouterRebalance(self))
        last_marker = last_commit = time.monotonic()
        try:
            while not w.stopping.is_set():
                try:
                    batch = await self.consumer.getmany(timeout_ms=int(self.marker_s * 1000), max_records=5000)
                    self.ok = True
                except Exception as exc:
                    self.ok = False
                    log.error("router fetch failed: %s", exc)
                    await asyncio.sleep(1)
                    continue
                await self._route(batch)
                now = time.monotonic()
                if now - last_marker >= self.marker_s:
                    await self._update_positions()
                    await self._markers()
                    last_marker = now
                if now - last_commit >= self.commit_s:
                    await self.commit()
                    last_commit = now
        finally:
            try:
                await asyncio.wait_for(self.commit(), timeout=5)
            except Exception as exc:
                log.warning("router final commit: %s", exc)
            try:
                await asyncio.wait_for(self.consumer.stop(), timeout=3)
            except Exception as exc:
                log.warning("closing router consumer: %s", exc)

    async def _route(self, batch: dict) -> None:
        # A revocation waits for the batch in hand: otherwise its records could
        # be sent after the revoke's commit, behind the next owner's re-sends
        # of the same offsets, and the shards' dedupe (by highest origin
        # offset) would drop the records in between.
        async with self.lock:
            await self._route_locked(batch)

    async def _route_locked(self, batch: dict) -> None:
        w, eng = self.w, self.engine
        producer, topic_out, n = w.producer, w.routed_topic, w.shard_count
        # One BatchBuilder per shard: appending to it costs a fraction of a
        # producer.send() per record, which dominated the router's time.
        builders: dict[int, Any] = {}
        sends: list = []

        def put(p: int, key: bytes, value: bytes) -> None:
            b = builders.get(p)
            if b is None:
                b = builders[p] = producer.create_batch()
            if b.append(timestamp=None, key=key, value=value) is None:  # full: send it, start another
                sends.append(producer.send_batch(b, topic_out, partition=p))
                b = builders[p] = producer.create_batch()
                b.append(timestamp=None, key=key, value=value)

        dead: list = []
        for tp, recs in batch.items():
            source = w.input_topics[tp.topic]
            o = (tp.topic, tp.partition)
            st = self.origins.setdefault(o, [0, None, None])
            prefix = f"{tp.topic}:{tp.partition}:"
            for rec in recs:
                ev, bad = eng.decode_record(source, rec.value if rec.value is not None else b"",
                                            tp.topic, tp.partition, rec.offset, rec.key)
                if bad is not None:
                    dead.append(bad)
                    continue
                ts = ev.ts
                if eng.too_far_ahead(ts):  # refused here, once; shards never see it
                    dead.append(eng.refuse_future(source, ev, rec.value, tp.topic, partition=tp.partition,
                                                  offset=rec.offset, key=rec.key))
                    continue
                eng.consumed[source] += 1
                if st[1] is None or ts > st[1]:
                    st[1] = ts
                if st[2] is None or ts < st[2]:
                    st[2] = ts
                key = (prefix + str(rec.offset)).encode()
                for p in eng.route(source, ev, n):
                    put(p, key, rec.value)
            if recs:
                st[0] = recs[-1].offset + 1
                self.records += len(recs)
        for p, b in builders.items():
            sends.append(producer.send_batch(b, topic_out, partition=p))
        for coro in sends:
            fut = await coro  # queued in order per shard; delivery is awaited by commit()'s flush
            fut.add_done_callback(w._delivered)  # a lost routed batch stops the worker (no commit passes it)
        if dead:
            await w.emit(dead)

    async def _update_positions(self) -> None:
        for tp in list(self.assigned):
            hw = self.consumer.highwater(tp)
            o = (tp.topic, tp.partition)
            if hw is None:
                continue  # not fetched yet: unknown, so no marker (the shards wait)
            st = self.origins.get(o)
            if st is None or st[0] == 0:
                try:
                    pos = await self.consumer.position(tp)
                except Exception:
                    continue
                st = self.origins.setdefault(o, [pos, None, None])
                st[0] = max(st[0], pos)
            self.caught[o] = st[0] >= hw
            self.w.lag[o] = max(0, hw - st[0])

    async def _markers(self) -> None:
        entries = []
        for tp in self.assigned:
            o = (tp.topic, tp.partition)
            st = self.origins.get(o)
            if st is None or o not in self.caught:
                continue
            entries.append([tp.topic, tp.partition, st[0], st[1], st[2], self.caught[o]])
            st[2] = None
        if not entries:
            return
        value = json.dumps(entries, separators=(",", ":")).encode()
        for p in range(self.w.shard_count):
            await self.w.producer.send(self.w.routed_topic, value=value, key=MARKER_KEY, partition=p)

    async def commit(self) -> None:
        """Flush what was routed, then commit the input positions behind it
        (both bounded: an unreachable broker postpones, never blocks)."""
        offsets = {tp: self.origins[(tp.topic, tp.partition)][0] for tp in self.assigned
                   if self.origins.get((tp.topic, tp.partition), [0])[0] > 0}
        if not await self.w.flush_outputs("router"):
            return
        if offsets:  # bounded, never cancelled (a failure means the next owner re-routes: deduplicated)
            await self.w.commit_offsets(offsets, self.consumer)


class _RouterRebalance(ConsumerRebalanceListener):
    def __init__(self, router: Router):
        self.r = router

    async def on_partitions_revoked(self, revoked):
        r = self.r
        if revoked and r.w.producer is not None:
            async with r.lock:
                await r._markers()
                await r.commit()
        for tp in revoked:
            r.assigned.discard(tp)
            o = (tp.topic, tp.partition)
            r.origins.pop(o, None)
            r.caught.pop(o, None)
            r.w.lag.pop(o, None)

    async def on_partitions_assigned(self, assigned):
        self.r.assigned |= set(assigned)
        log.info("router: %d input partitions assigned", len(assigned))


class Shard:
    """Stage 2 for one partition of `routed`: an engine owning that hash range."""

    def __init__(self, index: int, engine: Engine, idle_s: float, origins: list[tuple[str, int]],
                 live_delay_ms: int = 0):
        self.index = index
        self.engine = engine
        self.buffer = ReorderBuffer(idle_s, live_delay_ms=live_delay_ms)
        self.buffer.assign(origins)  # every input partition holds the watermark until it reports
        self.applied: dict[tuple[str, int], int] = {}  # origin -> next origin offset not yet taken
        self.pos: int | None = None  # next offset of `routed` to read
        self.seen: dict[tuple[str, int], float] = {}  # origin -> wall clock of its last marker
        self.first: int | None = None  # smallest ts reported before the engine started
        # Origins whose start is known: a marker reported their first records
        # (its `lo` covers them) or that they are caught up with none. The
        # engine starts at the smallest ts of all origins, as replay does at
        # the file's first event, so it waits for every origin's report.
        self.known: set[tuple[str, int]] = set()
        self.origins = set(origins)
        self.dups = 0
        self.gap: tuple[int, int] | None = None  # (position, first offset) of a batch that skipped ahead
        self.behind = True  # not yet at the end of its partition of `routed`
        self.baseline: dict = {}

    def dump(self) -> bytes:
        items = [(src, o[0], o[1], off, raw) for src, _ev, o, off, raw in self.buffer.items()]
        extra = {"pos": self.pos, "applied": [(t, p, n) for (t, p), n in self.applied.items()],
                 "part_max": [(t, p, m) for (t, p), m in self.buffer.part_max.items()],
                 "buffer": items, "first": self.first, "known": sorted(self.known)}
        return snapshot.dump(self.engine, extra)

    def load(self, data: bytes) -> dict:
        extra, report = snapshot.load(self.engine, data)
        self.pos = extra["pos"]
        self.applied = {(t, p): n for t, p, n in extra["applied"]}
        for t, p, m in extra["part_max"]:
            self.buffer.part_max[(t, p)] = m
        self.first = extra["first"]
        self.known = {(t, p) for t, p in extra.get("known", ())}
        for src, t, p, off, raw in extra["buffer"]:
            ev, _ = self.engine.decode_record(src, raw, t, p, off)
            if ev is not None:
                self.buffer.push((t, p), ev.ts, (src, ev, (t, p), off, raw))
        return report


class ShardedWorker(Worker):
    """A worker that routes (stage 1) and evaluates its shards (stage 2)."""

    def __init__(self, *, make_engine: Callable[[], Engine], routed_topic: str, shard_count: int,
                 state: StateStore, marker_interval_s: float = 0.05, **kw: Any):
        super().__init__(engine=make_engine(), **kw)
        self.make_engine = make_engine
        self.routed_topic = routed_topic
        self.shard_count = shard_count
        self.state = state
        self.shards: dict[int, Shard] = {}
        self.origins: list[tuple[str, int]] = []
        self.retired: dict = {}  # counts of shards this process gave away (counters never go back)
        self.router = Router(self, marker_s=marker_interval_s)
        self.router_task: asyncio.Task | None = None
        self.idle_s = self.buffer.idle_s
        self.ruleset = None

    # -- lifecycle ------------------------------------------------------------------
    def restore(self) -> None:
        """Shards restore when assigned (from the state topic), not at start."""

    def subscription(self) -> list[str]:
        return [self.routed_topic]

    def listener(self) -> ConsumerRebalanceListener:
        return _ShardRebalance(self)

    async def on_started(self) -> None:
        self.router_task = asyncio.create_task(self.router.run())

    async def on_stopping(self) -> None:
        if self.router_task is not None:
            self.stopping.set()
            try:
                await asyncio.wait_for(self.router_task, timeout=8)
            except Exception as exc:
                log.warning("router stop: %s", exc)

    async def _input_origins(self) -> list[tuple[str, int]]:
        """Every input partition: a shard's watermark waits for each one.
        Asked of the producer, which fetches a topic's metadata on demand
        (the group consumer's metadata covers only `routed`: an empty answer
        there would let a shard's engine start without waiting for any)."""
        if not self.origins:
            found = []
            for t in self.input_topics:
                found += [(t, p) for p in await self.producer.partitions_for(t)]
            self.origins = sorted(found)
        return self.origins

    async def open_shard(self, index: int) -> Shard:
        await self._input_origins()  # an assignment can come before on_started has them
        self.state.attach(self.producer)
        eng = self.make_engine()
        eng.set_shard(index, self.shard_count)
        if self.ruleset is not None:
            eng.replace_rules(self.ruleset)
        shard = Shard(index, eng, self.idle_s, self.origins, self.buffer.live_delay_ms)
        data = await self.state.read(index)
        if data is not None:
            try:
                report = shard.load(data)
                log.info("shard %d restored: %d rules with state, %d buffered, routed offset %s",
                         index, len(report["restored"]), len(shard.buffer), shard.pos)
            except Exception as exc:  # damaged state must not stop the service
                log.error("shard %d: state unreadable (%s); starting it empty", index, exc)
                shard = Shard(index, eng, self.idle_s, self.origins, self.buffer.live_delay_ms)
        shard.baseline = figures(eng)
        return shard

    def close_shard(self, index: int) -> None:
        shard = self.shards.pop(index, None)
        if shard is not None:
            self.retired = add(self.retired, self._shard_counts(shard))

    # -- checkpoint -----------------------------------------------------------------------
    async def checkpoint(self, why: str = "interval", only: list[int] | None = None) -> None:
        t = time.monotonic()
        if why == "interval" and not self.broker_ok:
            return  # nothing can be flushed or committed: the snapshot waits for the broker
        if not await self.flush_outputs(why):  # outputs first: the state must never be ahead of them
            return
        size = 0
        commit = {}
        for index, shard in list(self.shards.items()):
            if only is not None and index not in only:
                continue
            data = shard.dump()
            size += len(data)
            await self.state.write(index, data)
            if shard.pos is not None:
                commit[TopicPartition(self.routed_topic, index)] = shard.pos
        if not await self.flush_outputs(why):  # the state records are acknowledged before the commit
            return
        if commit:
            await self.commit_offsets(commit)
        self.hooks.snapshot(time.monotonic() - t, size)
        log.debug("checkpoint (%s): %d shards, %d bytes in %.3fs", why, len(commit), size, time.monotonic() - t)

    # -- stage 2 -----------------------------------------------------------------------------
    async def _process(self, batch: dict) -> None:
        t = time.perf_counter()
        outs: list = []
        n = 0
        wall = time.monotonic()
        for tp, recs in batch.items():
            shard = self.shards.get(tp.partition)
            if shard is None or not recs:
                continue  # not (yet) this worker's: its position is set when it is
            if shard.pos is not None and recs[0].offset != shard.pos:
                recs = self._from_position(tp, shard, recs)
                if not recs:
                    continue
            n += len(recs)
            self._take(shard, recs, wall)
            shard.pos = recs[-1].offset + 1
        for index, shard in self.shards.items():
            # Markers say "caught up" as of when they were sent. A shard still
            # reading its backlog has not seen what came after them, so no
            # input partition counts as caught up for it (idle, live floor).
            hw = self.consumer.highwater(TopicPartition(self.routed_topic, index))
            shard.behind = hw is None or shard.pos is None or shard.pos < hw
            self._release(shard, wall, outs)
        if outs:
            await self.emit(outs)
        self.records += n
        self.hooks.batch(time.perf_counter() - t, n)

    def _from_position(self, tp: TopicPartition, shard: Shard, recs: list) -> list:
        """The records of a batch that does not start at the shard's position
        that it may take. A shard reads its partition of `routed` without a
        gap: its dedupe (by highest origin offset) would drop the records of a
        gap once they came. A batch that starts before the position was
        fetched before a seek: its new part is taken. One that starts after it
        is dropped and the partition read again from the position, unless the
        same gap comes back: then the records are gone from Kafka (retention)
        and the shard goes on."""
        first = recs[0].offset
        if first < shard.pos:
            return [r for r in recs if r.offset >= shard.pos]
        if shard.gap == (shard.pos, first):
            log.error("shard %d: routed offsets %d..%d are gone from Kafka (retention?); going on from %d",
                      shard.index, shard.pos, first - 1, first)
            return recs
        log.warning("shard %d: a batch from routed offset %d, expected %d; reading again from %d",
                    shard.index, first, shard.pos, shard.pos)
        shard.gap = (shard.pos, first)
        self.consumer.seek(tp, shard.pos)
        return []

    def _take(self, shard: Shard, recs: list, wall: float) -> None:
        buf, applied, sources = shard.buffer, shard.applied, self.input_topics
        for rec in recs:
            if rec.key == MARKER_KEY:
                for topic, part, _next, mx, lo, caught in json.loads(rec.value):
                    o = (topic, part)
                    if mx is not None:
                        buf.advance(o, mx)
                    buf.set_caught_up(o, caught)
                    shard.seen[o] = wall
                    if not shard.engine.started:
                        if lo is not None and (shard.first is None or lo < shard.first):
                            shard.first = lo
                        if mx is not None or caught:
                            shard.known.add(o)
                continue
            topic, part, off = rec.key.decode().rsplit(":", 2)
            o, off = (topic, int(part)), int(off)
            if off < applied.get(o, 0):
                shard.dups += 1  # re-sent by a router after a restart
                continue
            applied[o] = off + 1
            source = sources[topic]
            ev, _ = shard.engine.decode_record(source, rec.value, topic, o[1], off)
            if ev is not None:  # the router validated it; same decoder, same verdict
                buf.push(o, ev.ts, (source, ev, o, off, rec.value))

    def _release(self, shard: Shard, wall: float, outs: list) -> None:
        buf, eng = shard.buffer, shard.engine
        for o, since in buf.caught_up.items():
            if since is not None and (shard.behind or wall - shard.seen.get(o, -INF) > LEASE_S):
                buf.set_caught_up(o, False)  # behind on `routed`, or its router went quiet: wait
        w = buf.watermark()
        if w == -INF:
            return
        if not eng.started:
            # The stream's start, as replay sees it: the smallest ts of all
            # origins. Records routed here can precede the marker that reports
            # them, so the buffer's own oldest event counts too.
            if not shard.known >= shard.origins:
                return
            starts = [x for x in (shard.first, buf.heap[0][0] if buf.heap else None) if x is not None]
            if not starts:
                return
            outs.extend(eng.advance_to(int(min(starts))))
        for source, ev, *_ in buf.ready():
            outs.extend(eng.process_event(source, ev))
        top = max(buf.part_max.values(), default=-INF)
        target = min(w, top)
        if target != -INF and target != INF:
            outs.extend(eng.advance_to(int(target)))

    def pending(self) -> int:
        return sum(len(s.buffer) for s in self.shards.values())

    def _flow_control(self) -> None:
        pass  # the router's partitions are read in offset order; shards buffer only one marker interval

    # -- rules -------------------------------------------------------------------------------
    def _apply_reload(self) -> None:
        rs, self.pending_reload = self.pending_reload, None
        self.ruleset = rs
        self.engine.replace_rules(rs)
        for shard in self.shards.values():
            shard.engine.replace_rules(rs)
        log.info("rules reloaded (version %s) in the router and %d shards", rs.version, len(self.shards))

    # -- figures ---------------------------------------------------------------------------------
    @staticmethod
    def _shard_counts(shard: Shard) -> dict:
        f = subtract(figures(shard.engine), shard.baseline)
        f["consumed"] = {}  # the router counts consumption; shards see routed copies
        return f

    def counters(self) -> dict:
        total = add(subtract(figures(self.engine), self.baseline or {}), self.retired)
        for shard in self.shards.values():
            total = add(total, self._shard_counts(shard))
        return total

    def gauges(self) -> dict:
        engines = [s.engine for s in self.shards.values()]
        g = gauges(engines, sum(len(s.buffer) for s in self.shards.values()))
        g["lifetime"] = sum(self.engine.consumed.values()) + sum(self.engine.invalid.values())
        if not engines:
            g["rules_loaded"] = len(self.engine.runners)
            g["version"] = self.engine.ruleset_version
        return g

    @property
    def ready(self) -> bool:
        return self.engine_ready and self.broker_ok and bool(self.router.assigned or self.shards)

    @property
    def alive(self) -> bool:
        return super().alive and (self.router_task is None or not self.router_task.done() or self.stopping.is_set())


class _ShardRebalance(ConsumerRebalanceListener):
    def __init__(self, worker: ShardedWorker):
        self.w = worker

    async def on_partitions_revoked(self, revoked):
        w = self.w
        gone = [tp.partition for tp in revoked if tp.partition in w.shards]
        if gone:
            await w.checkpoint("rebalance", only=gone)
        for p in gone:
            w.close_shard(p)
        for tp in revoked:
            w.assigned.discard(tp)

    async def on_partitions_assigned(self, assigned):
        w = self.w
        for tp in assigned:
            shard = await w.open_shard(tp.partition)
            if shard.pos is None:
                # No state: from the committed offset, else from the start of
                # `routed` (explicitly: Tansu's ListOffsets is not reliable).
                shard.pos = await w.consumer.committed(tp) or 0
            # The main loop keeps fetching while this listener awaits, so a
            # shard is registered only once its position is set, with no await
            # in between: a shard that took a later batch first and was then
            # moved back would drop the earlier records as re-sends (this lost
            # alerts when a worker died before its first checkpoint).
            w.consumer.seek(tp, shard.pos)
            w.shards[tp.partition] = shard
            w.assigned.add(tp)
        w.assigned_once = True
        log.info("shards assigned: %s", sorted(w.shards))
