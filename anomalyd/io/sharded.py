"""Scale-out: several workers share the input partitions and the groups.

A rule's groups span input partitions (a merchant's payments arrive keyed by
payment id), so the input partitions cannot simply be split between workers.
Every worker process runs two stages of the runtime, as Kafka Streams runs
two sub-topologies around a repartition topic:

1. :class:`Router` (consumer group `<group>-router` on the input topics). It
   validates each record (refused ones go to dead-letter here, once) and
   sends the validated event to the partition of the repartition topic of
   every group it belongs to (`Engine.route`: a hash of the group key), with
   its origin `(topic, partition, offset)` in a header. Every
   `watermark_s` it sends each shard a watermark: for each input partition
   it owns, the next offset, the largest `ts` so far, the smallest `ts` since
   the last watermark, and whether it is caught up. Input offsets are
   committed only after the producer has flushed.
2. :class:`Shards` (consumer group `<group>` on the repartition topic): one
   engine per assigned partition (:class:`Shard`), owning the groups that
   hash there. A shard trusts the router's validation (it rebuilds the event
   without validating it again), holds events in a reorder buffer keyed by
   *origin* partition and releases them in `ts` order up to the watermark of
   all input partitions, then moves its clock to that watermark, so
   deadlines (absence, windows ageing out) fire even while its own groups are
   quiet. A router restart re-sends records; the shard drops them by origin
   offset. An input partition whose router stops sending watermarks holds the
   watermark until a new owner reports, so a dead worker cannot make
   another's events look late.

A shard's checkpoint (engine, buffer, origin offsets, position in the
repartition topic) is written to the checkpoint store (a compacted topic, one partition per shard),
after the outputs are flushed and before the offsets are committed; a shard
that moves to another worker is restored from there. Output ids are the
engine's deterministic ids, so what a crash makes a worker emit twice is
recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from aiokafka import TopicPartition

from ..engine import snapshot
from ..engine.engine import Engine
from ..engine.rules.loader import RuleSet
from .checkpoint_store import CheckpointStore
from .ordering import INF, ReorderBuffer
from .records import (
    ORIGIN_HEADER,
    VALIDATED_HEADER,
    WATERMARK_KEY,
    Origin,
    Watermark,
    WatermarkEntry,
    encode_event,
    headers_of,
    rebuild,
    refill,
)
from .runtime import ReadsInput, Runtime, Saved, Strategy, TopicSpec, add, figures, subtract

log = logging.getLogger("anomalyd.sharded")

LEASE_S = 2.0  # an input partition whose router is silent this long holds the watermark again
_VALIDATED = [(VALIDATED_HEADER, b"1")]


class _Progress:
    """An input partition as the router has read it."""

    __slots__ = ("next_offset", "max_ts", "min_ts")

    def __init__(self, next_offset: int = 0):
        self.next_offset = next_offset
        self.max_ts: int | None = None  # largest ts so far
        self.min_ts: int | None = None  # smallest ts since the last watermark


class Router(ReadsInput):
    """Stage 1: validate, dead-letter, re-key by group, send watermarks."""

    name = "router"
    group_suffix = "-router"
    fetch_max_wait_ms = 20
    checkpoint_interval_s = 1.0  # commit input offsets (no state: the shards hold it)
    evaluates = False

    def __init__(
        self,
        engine: Engine,
        input_topics: dict[str, str],
        repartition_topic: str,
        shard_count: int,
        watermark_s: float = 0.05,
    ):
        super().__init__(engine, input_topics)  # decoding and routing only; never evaluates
        self.repartition_topic = repartition_topic
        self.shard_count = shard_count
        self.watermark_s = watermark_s
        self.progress: dict[tuple[str, int], _Progress] = {}
        self.caught_up: dict[tuple[str, int], bool] = {}
        # A revocation waits for the batch in hand: otherwise its records could
        # be sent after the revocation's commit, behind the next owner's
        # re-sends of the same offsets, and the shards' dedupe (by highest
        # origin offset) would drop the records in between.
        self.lock = asyncio.Lock()
        self.last_watermark = time.monotonic()

    def poll_ms(self) -> int:
        return int(self.watermark_s * 1000)

    def internal_topics(self) -> dict[str, TopicSpec]:
        return {self.repartition_topic: TopicSpec(self.shard_count)}  # one partition per shard

    def revoked(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            o = (tp.topic, tp.partition)
            self.progress.pop(o, None)
            self.caught_up.pop(o, None)
            self.rt.lag.pop(o, None)

    async def process(self, batch: dict) -> tuple[list, int]:
        dead = await self._route(batch)
        now = time.monotonic()
        if now - self.last_watermark >= self.watermark_s:
            await self._update_positions()
            await self._send_watermarks()
            self.last_watermark = now
        return dead, sum(len(recs) for recs in batch.values())

    async def _route(self, batch: dict) -> list:
        eng, rt = self.engine, self.rt
        producer, topic_out, n = rt.producer, self.repartition_topic, self.shard_count
        # One BatchBuilder per shard: appending to it costs a fraction of a
        # producer.send() per record, which dominated the router's time.
        builders: dict[int, Any] = {}
        sends: list = []

        def put(p: int, headers: list, value: bytes) -> None:
            b = builders.get(p)
            if b is None:
                b = builders[p] = producer.create_batch()
            if b.append(timestamp=None, key=None, value=value, headers=headers) is None:  # full: send, start another
                sends.append(producer.send_batch(b, topic_out, partition=p))
                b = builders[p] = producer.create_batch()
                b.append(timestamp=None, key=None, value=value, headers=headers)

        dead: list = []
        progress = self.progress
        for source, part, valid in self.decoded(batch, dead):
            eng.consumed[source] += len(valid)
            st = progress.get(part)
            if st is None:
                st = progress[part] = _Progress()
            hi, lo = st.max_ts, st.min_ts
            for origin, _rec, ev in valid:
                ts = ev.ts
                if hi is None or ts > hi:
                    hi = ts
                if lo is None or ts < lo:
                    lo = ts
                shards = eng.route(source, ev, n)
                if shards:
                    headers = [(ORIGIN_HEADER, origin.encode()), *_VALIDATED]
                    value = encode_event(ev)
                    for p in shards:
                        put(p, headers, value)
            st.max_ts, st.min_ts = hi, lo
        for p, b in builders.items():
            sends.append(producer.send_batch(b, topic_out, partition=p))
        for coro in sends:
            fut = await coro  # queued in order per shard; delivery is awaited by the checkpoint's flush
            fut.add_done_callback(rt.delivered)  # a lost routed batch stops the worker (no commit passes it)
        return dead

    def read_to(self, part: tuple[str, int], next_offset: int) -> None:
        self.progress.setdefault(part, _Progress()).next_offset = next_offset

    async def _update_positions(self) -> None:
        consumer = self.stage.consumer
        for tp in list(self.stage.assigned):
            hw = consumer.highwater(tp)
            o = (tp.topic, tp.partition)
            if hw is None:
                continue  # not fetched yet: unknown, so no watermark (the shards wait)
            st = self.progress.get(o)
            if st is None or st.next_offset == 0:
                try:
                    pos = await consumer.position(tp)
                except Exception:
                    continue
                st = self.progress.setdefault(o, _Progress(pos))
                st.next_offset = max(st.next_offset, pos)
            self.caught_up[o] = st.next_offset >= hw
            self.rt.lag[o] = max(0, hw - st.next_offset)

    async def _send_watermarks(self) -> bool:
        entries = []
        for tp in self.stage.assigned:
            o = (tp.topic, tp.partition)
            st = self.progress.get(o)
            if st is None or o not in self.caught_up:
                continue
            entries.append(
                WatermarkEntry(tp.topic, tp.partition, st.next_offset, st.max_ts, st.min_ts, self.caught_up[o])
            )
            st.min_ts = None
        if not entries:
            return False
        value = Watermark.encode(entries)
        for p in range(self.shard_count):
            await self.rt.producer.send(self.repartition_topic, value=value, key=WATERMARK_KEY, partition=p)
        return True

    async def save(self, why: str, only: set[TopicPartition] | None) -> Saved:
        """The input positions behind what was routed (the runtime flushed it
        first). Handing partitions over, a last watermark goes out first."""
        sent = why == "rebalance" and await self._send_watermarks()
        offsets = {
            tp: st.next_offset
            for tp in self.stage.assigned
            if (st := self.progress.get((tp.topic, tp.partition))) is not None and st.next_offset > 0
        }
        return Saved(offsets, None, sent)

    def apply_rules(self, rs: RuleSet) -> None:
        self.engine.replace_rules(rs)


class Shard:
    """Stage 2 for one partition of the repartition topic: an engine owning that hash range."""

    def __init__(
        self, index: int, engine: Engine, idle_s: float, origins: list[tuple[str, int]], live_delay_ms: int = 0
    ):
        self.index = index
        self.engine = engine
        self.buffer = ReorderBuffer(idle_s, live_delay_ms=live_delay_ms)
        self.buffer.assign(origins)  # every input partition holds the watermark until it reports
        self.next_origin_offset: dict[tuple[str, int], int] = {}  # origin partition -> next offset not yet taken
        self.pos: int | None = None  # next offset of the repartition topic to read
        self.heard: dict[tuple[str, int], float] = {}  # origin partition -> wall clock of its last watermark
        self.start_ts: int | None = None  # smallest ts reported before the engine started
        # Origin partitions whose start is known: a watermark reported their
        # first records (its min ts covers them) or that they are caught up
        # with none. The engine starts at the smallest ts of all origins, as
        # replay does at the file's first event, so it waits for every one.
        self.reported: set[tuple[str, int]] = set()
        self.origins = set(origins)
        self.dups = 0
        self.gap: tuple[int, int] | None = None  # (position, first offset) of a batch that skipped ahead
        self.behind = True  # not yet at the end of its partition of the repartition topic
        self.baseline: dict = {}

    def dump(self) -> bytes:
        extra = {
            "pos": self.pos,
            "next_origin_offset": [(t, p, n) for (t, p), n in self.next_origin_offset.items()],
            "part_max": [(t, p, m) for (t, p), m in self.buffer.part_max.items()],
            "buffer": [r.encode() for r in self.buffer.items()],
            "validated": True,
            "start_ts": self.start_ts,
            "reported": sorted(self.reported),
        }
        return snapshot.dump(self.engine, extra)

    def load(self, data: bytes) -> dict:
        extra, report = snapshot.load(self.engine, data)
        self.pos = extra["pos"]
        # 0.1.0 named these applied, first and known
        self.next_origin_offset = {(t, p): n for t, p, n in extra.get("next_origin_offset", extra.get("applied"))}
        for t, p, m in extra["part_max"]:
            self.buffer.part_max[(t, p)] = m
        self.start_ts = extra.get("start_ts", extra.get("first"))
        self.reported = {(t, p) for t, p in extra.get("reported", extra.get("known", ()))}
        # before: the original JSON, validated again
        refill(self.buffer, self.engine, extra["buffer"], validated=extra.get("validated", False))
        return report

    def take_watermark(self, entries: list[WatermarkEntry], wall: float) -> None:
        buf = self.buffer
        for e in entries:
            o = e.part
            if e.max_ts is not None:
                buf.advance(o, e.max_ts)
            buf.set_caught_up(o, e.caught_up)
            self.heard[o] = wall
            if not self.engine.started:
                if e.min_ts is not None and (self.start_ts is None or e.min_ts < self.start_ts):
                    self.start_ts = e.min_ts
                if e.max_ts is not None or e.caught_up:
                    self.reported.add(o)


class Shards(Strategy):
    """Stage 2: the shards this worker is assigned, each evaluating its groups."""

    name = "shard"

    def __init__(
        self,
        make_engine: Callable[[], Engine],
        input_topics: dict[str, str],
        repartition_topic: str,
        shard_count: int,
        checkpoints: CheckpointStore,
        *,
        partition_idle_s: float = 0.5,
        partition_live_delay_ms: int = 50,
    ):
        self.make_engine = make_engine
        self.input_topics = input_topics
        self.repartition_topic = repartition_topic
        self.shard_count = shard_count
        self.checkpoints = checkpoints
        self.idle_s, self.live_delay_ms = partition_idle_s, partition_live_delay_ms
        self.shards: dict[int, Shard] = {}
        self.origins: list[tuple[str, int]] = []  # every input partition
        self.retired: dict = {}  # counts of shards this process gave away (counters never go back)
        self.ruleset: RuleSet | None = None

    def topics(self) -> list[str]:
        return [self.repartition_topic]

    def internal_topics(self) -> dict[str, TopicSpec]:
        # Compacted: only each shard's newest checkpoint chunks are needed.
        return {self.checkpoints.topic: TopicSpec(self.shard_count, {"cleanup.policy": "compact"})}

    def pending(self) -> int:
        return sum(len(s.buffer) for s in self.shards.values())

    # -- assignment ------------------------------------------------------------------
    async def _input_origins(self) -> list[tuple[str, int]]:
        """Every input partition: a shard's watermark waits for each one.
        Asked of the producer, which fetches a topic's metadata on demand
        (the group consumer's metadata covers only the repartition topic: an
        empty answer there would let a shard's engine start without waiting
        for any)."""
        if not self.origins:
            found = []
            for t in self.input_topics:
                found += [(t, p) for p in await self.rt.producer.partitions_for(t)]
            self.origins = sorted(found)
        return self.origins

    def new_shard(self, index: int) -> Shard:
        eng = self.make_engine()
        eng.set_shard(index, self.shard_count)
        if self.ruleset is not None:
            eng.replace_rules(self.ruleset)
        return Shard(index, eng, self.idle_s, self.origins, self.live_delay_ms)

    async def open_shard(self, index: int) -> Shard:
        await self._input_origins()  # an assignment can come before the first batch
        self.checkpoints.attach(self.rt.producer)
        shard = self.new_shard(index)
        data = await self.checkpoints.read(index)
        if data is not None:
            try:
                report = shard.load(data)
                log.info(
                    "shard %d restored: %d rules with state, %d buffered, repartition offset %s",
                    index,
                    len(report["restored"]),
                    len(shard.buffer),
                    shard.pos,
                )
            except Exception as exc:  # damaged state must not stop the service
                log.error("shard %d: state unreadable (%s); starting it empty", index, exc)
                shard = self.new_shard(index)
        shard.baseline = figures(shard.engine)
        return shard

    async def assigned(self, tps: set[TopicPartition]) -> None:
        consumer = self.stage.consumer
        for tp in tps:
            shard = await self.open_shard(tp.partition)
            if shard.pos is None:
                # No state: from the committed offset, else from the start of
                # the topic (explicitly: Tansu's ListOffsets is not reliable).
                shard.pos = await consumer.committed(tp) or 0
            # The loop keeps fetching while this listener awaits, so a shard
            # is registered only once its position is set, with no await in
            # between: a shard that took a later batch first and was then
            # moved back would drop the earlier records as re-sends (this lost
            # alerts when a worker died before its first checkpoint).
            consumer.seek(tp, shard.pos)
            self.shards[tp.partition] = shard
        log.info("shards assigned: %s", sorted(self.shards))

    def revoked(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            shard = self.shards.pop(tp.partition, None)
            if shard is not None:
                self.retired = add(self.retired, _shard_counts(shard))

    # -- checkpoint -----------------------------------------------------------------------
    async def save(self, why: str, only: set[TopicPartition] | None) -> Saved | None:
        indices = None if only is None else {tp.partition for tp in only}
        size = 0
        commit = {}
        for index, shard in list(self.shards.items()):
            if indices is not None and index not in indices:
                continue
            data = shard.dump()
            size += len(data)
            await self.checkpoints.write(index, data)
            if shard.pos is not None:
                commit[TopicPartition(self.repartition_topic, index)] = shard.pos
        if not commit:
            return None
        return Saved(commit, size, sent=True)  # the state records are acknowledged before the commit

    # -- a turn -----------------------------------------------------------------------------
    async def process(self, batch: dict) -> tuple[list, int] | None:
        if not batch and not self.pending():
            return None
        outs: list = []
        n = 0
        wall = time.monotonic()
        consumer = self.stage.consumer
        for tp, recs in batch.items():
            shard = self.shards.get(tp.partition)
            if shard is None or not recs:
                continue  # not (yet) this worker's: its position is set when it is
            if shard.pos is not None and recs[0].offset != shard.pos:
                recs = self._from_position(tp, shard, shard.pos, recs)
                if not recs:
                    continue
            n += len(recs)
            self.take(shard, recs, wall)
            shard.pos = recs[-1].offset + 1
        for index, shard in self.shards.items():
            # Watermarks say "caught up" as of when they were sent. A shard
            # still reading its backlog has not seen what came after them, so
            # no input partition counts as caught up for it (idle, live floor).
            hw = consumer.highwater(TopicPartition(self.repartition_topic, index))
            shard.behind = hw is None or shard.pos is None or shard.pos < hw
            self.release(shard, wall, outs)
        return outs, n

    def _from_position(self, tp: TopicPartition, shard: Shard, pos: int, recs: list) -> list:
        """The records of a batch that does not start at the shard's position
        that it may take. A shard reads its partition of the repartition
        topic without a gap: its dedupe (by highest origin offset) would drop
        the records of a gap once they came. A batch that starts before the
        position was fetched before a seek: its new part is taken. One that
        starts after it is dropped and the partition read again from the
        position, unless the same gap comes back: then the records are gone
        from Kafka (retention) and the shard goes on."""
        first = recs[0].offset
        if first < pos:
            return [r for r in recs if r.offset >= pos]
        if shard.gap == (pos, first):
            log.error(
                "shard %d: repartition offsets %d..%d are gone from Kafka (retention?); going on from %d",
                shard.index,
                pos,
                first - 1,
                first,
            )
            return recs
        log.warning(
            "shard %d: a batch from repartition offset %d, expected %d; reading again from %d",
            shard.index,
            first,
            pos,
            pos,
        )
        shard.gap = (pos, first)
        self.stage.consumer.seek(tp, pos)
        return []

    def take(self, shard: Shard, recs: list, wall: float) -> None:
        buf, taken, sources = shard.buffer, shard.next_origin_offset, self.input_topics
        for rec in recs:
            if rec.key == WATERMARK_KEY:
                shard.take_watermark(Watermark.decode(rec.value), wall)
                continue
            headers = headers_of(rec)
            origin_header = headers.get(ORIGIN_HEADER)
            if origin_header is None:  # routed by the previous release: origin in the key, the original value
                topic, part, off = rec.key.decode().rsplit(":", 2)
                origin = Origin(topic, int(part), int(off))
            else:
                origin = Origin.decode(origin_header)
            o = origin.part
            if origin.offset < taken.get(o, 0):
                shard.dups += 1  # re-sent by a router after a restart
                continue
            taken[o] = origin.offset + 1
            validated = VALIDATED_HEADER in headers  # by the router; a previous release's record is validated here
            br = rebuild(shard.engine, sources[origin.topic], origin, rec.value, validated)
            if br is None:
                continue
            if not validated:
                br = br._replace(raw=encode_event(br.event))  # checkpoints hold validated events only
            buf.push(o, br.event.ts, br)

    def release(self, shard: Shard, wall: float, outs: list) -> None:
        buf, eng = shard.buffer, shard.engine
        for o, since in buf.caught_up.items():
            if since is not None and (shard.behind or wall - shard.heard.get(o, -INF) > LEASE_S):
                buf.set_caught_up(o, False)  # behind on the repartition topic, or its router went quiet: wait
        w = buf.watermark()
        if w == -INF:
            return
        if not eng.started:
            # The stream's start, as replay sees it: the smallest ts of all
            # origins. Records routed here can precede the watermark that
            # reports them, so the buffer's own oldest event counts too.
            if not shard.reported >= shard.origins:
                return
            starts = [x for x in (shard.start_ts, buf.heap[0][0] if buf.heap else None) if x is not None]
            if not starts:
                return
            outs.extend(eng.advance_to(int(min(starts))))
        for r in buf.ready():
            outs.extend(eng.process_event(r.source, r.event))
        top = max(buf.part_max.values(), default=-INF)
        target = min(w, top)
        if target != -INF and target != INF:
            outs.extend(eng.advance_to(int(target)))

    # -- rules and figures -------------------------------------------------------------------
    def apply_rules(self, rs: RuleSet) -> None:
        self.ruleset = rs
        for shard in self.shards.values():
            shard.engine.replace_rules(rs)
        log.info("rules reloaded (version %s) in the router and %d shards", rs.version, len(self.shards))

    def counters(self) -> dict:
        total = self.retired
        for shard in self.shards.values():
            total = add(total, _shard_counts(shard))
        return total

    def evaluating_engines(self) -> list[Engine]:
        return [s.engine for s in self.shards.values()]


def _shard_counts(shard: Shard) -> dict:
    f = subtract(figures(shard.engine), shard.baseline)
    f["consumed"] = {}  # the router counts consumption; shards see routed copies
    return f


def scaleout_worker(
    *,
    make_engine: Callable[[], Engine],
    input_topics: dict[str, str],
    repartition_topic: str,
    shard_count: int,
    checkpoints: CheckpointStore,
    watermark_interval_s: float = 0.05,
    partition_idle_s: float = 0.5,
    partition_live_delay_ms: int = 50,
    **common: Any,
) -> Runtime:
    """The runtime in scale-out mode (ANOMALYD_SHARDS=N): a router and shards."""
    router = Router(make_engine(), input_topics, repartition_topic, shard_count, watermark_interval_s)
    shards = Shards(
        make_engine,
        input_topics,
        repartition_topic,
        shard_count,
        checkpoints,
        partition_idle_s=partition_idle_s,
        partition_live_delay_ms=partition_live_delay_ms,
    )
    return Runtime(input_topics=input_topics, strategies=[router, shards], **common)
