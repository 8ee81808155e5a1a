"""Direct mode: one stage reads every input partition, orders the events
across partitions (ReorderBuffer) and evaluates them, so the output equals
`anomalyd replay` on the same data. State (engine, input positions, and
the offsets of the records still in the reorder buffer) is checkpointed to
a snapshot file; after a crash the runtime resumes from it, reads the
buffered records again from Kafka, and produces the same records again with
the same ids."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from aiokafka import TopicPartition

from ..engine import snapshot
from ..engine.engine import Engine
from ..engine.rules.loader import RuleSet
from ..engine.timeutil import format_duration, format_ts
from .ordering import INF, ReorderBuffer
from .records import BufferedRecord, new_record, refill
from .runtime import ReadsInput, Runtime, Saved, figures
from .snapshots import SnapshotFile

log = logging.getLogger("anomalyd.worker")

STALL_WARN_S = 10.0  # events held this long: say why (at most once a minute)


def _secs(seconds: float) -> str:
    """A duration for the log, in whole seconds, at least 1s."""
    return format_duration(max(1, int(seconds)) * 1000)


def offset_ranges(offsets: list[int]) -> list[tuple[int, int]]:
    """Offsets as sorted [start, end) ranges (a partition's buffered records
    are mostly consecutive)."""
    ranges: list[tuple[int, int]] = []
    for o in sorted(offsets):
        if ranges and ranges[-1][1] == o:
            ranges[-1] = (ranges[-1][0], o + 1)
        elif not ranges or ranges[-1][1] < o:
            ranges.append((o, o + 1))
    return ranges


def _event_time(ts: float) -> str:
    return format_ts(int(ts)) if -INF < ts < INF else str(ts)


class Direct(ReadsInput):
    name = "direct"

    def __init__(
        self,
        engine: Engine,
        snapshots: SnapshotFile,
        input_topics: dict[str, str],
        *,
        partition_idle_s: float = 0.5,
        partition_live_delay_ms: int = 50,
        max_buffer: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(engine, input_topics)
        self.snapshots = snapshots
        self.max_buffer = max_buffer
        self.clock = clock
        self.buffer = ReorderBuffer(partition_idle_s, live_delay_ms=partition_live_delay_ms)
        self.positions: dict[tuple[str, int], int] = {}  # input partition -> next offset to read
        # After a restore, per input partition: the position the snapshot
        # recorded and the offsets below it that the engine has not seen yet;
        # every other record below it is skipped (released or dead-lettered).
        self.reread: dict[tuple[str, int], tuple[int, set[int]]] = {}
        self.paused: set[TopicPartition] = set()
        self.held_since = self.fetch_checked = clock()
        self.stall_logged = -INF
        self.fetch_stall_s = 10.0  # a partition not fetched this long while others are is resumed

    # -- state ---------------------------------------------------------------
    def restore(self) -> None:
        self._restore()
        self.baseline = figures(self.engine)  # metrics count from here (see surfaces/metrics.py)

    def _restore(self) -> None:
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
        # Snapshots written before issue 15 hold the buffered records themselves.
        refill(self.buffer, self.engine, extra.get("buffer", ()))
        held = 0
        for t, p, ranges in extra.get("held", ()):
            offsets = {o for a, b in ranges for o in range(a, b)}
            if offsets:
                part = (t, p)
                self.reread[part] = (self.positions[part], offsets)
                self.positions[part] = min(offsets)  # read again from the first one still held
                held += len(offsets)
        log.info(
            "restored snapshot: %d rules with state, %d fresh, %d buffered (%d to read again), positions %s",
            len(report["restored"]),
            len(report["fresh"]),
            len(self.buffer) + held,
            held,
            sorted(self.positions.items()),
        )

    def held(self) -> dict[tuple[str, int], list[int]]:
        """Per input partition, the offsets below its position that the
        engine has not seen: in the reorder buffer, or still to be read again
        after a restore."""
        held: dict[tuple[str, int], list[int]] = {}
        for r in self.buffer.items():
            o = r.origin
            held.setdefault(o.part, []).append(o.offset)
        for part, (_, offsets) in self.reread.items():
            pos = self.positions[part]
            held.setdefault(part, []).extend(o for o in offsets if o >= pos)
        return held

    async def save(self, why: str, only: set[TopicPartition] | None) -> Saved:
        # The buffered records are not written: their offsets are, and a
        # restore reads them again from Kafka (a checkpoint used to marshal
        # and compress the raw bytes of every buffered record, 20-50k while
        # a backlog drains).
        held = self.held()
        positions = dict(self.positions)
        for part, (end, _) in self.reread.items():
            positions[part] = max(positions[part], end)  # what lies between was seen or dead-lettered
        extra = {
            "positions": [(t, p, o) for (t, p), o in positions.items()],
            "held": [(t, p, offset_ranges(offsets)) for (t, p), offsets in held.items()],
        }
        data = snapshot.dump(self.engine, extra)
        await asyncio.get_running_loop().run_in_executor(None, self.snapshots.write, data)
        # Offsets committed to Kafka are for lag monitoring and for a lost
        # snapshot file; they never pass a record still held.
        commit = {}
        for tp in self.stage.assigned:
            part = (tp.topic, tp.partition)
            pos = self.positions.get(part)
            if pos is not None:
                commit[tp] = min(pos, min(held.get(part, ()), default=pos))
        return Saved(commit, len(data))

    # -- assignment ------------------------------------------------------------
    async def assigned(self, tps: set[TopicPartition]) -> None:
        consumer = self.stage.consumer
        for tp in tps:
            pos = self.positions.get((tp.topic, tp.partition))
            if pos is not None:
                consumer.seek(tp, pos)  # resume exactly where the snapshot left off
        self.buffer.assign([(tp.topic, tp.partition) for tp in tps])

    def revoked(self, tps: set[TopicPartition]) -> None:
        self.buffer.revoke([(tp.topic, tp.partition) for tp in tps])
        self.paused -= tps

    # -- a turn -------------------------------------------------------------------
    def pending(self) -> int:
        return len(self.buffer)

    async def process(self, batch: dict) -> tuple[list, int] | None:
        if not batch and not len(self.buffer):
            self.held_since = self.clock()  # idle: nothing is held
            return None
        engine, buffer, consumer = self.engine, self.buffer, self.stage.consumer
        outs: list = []
        fetched = batch
        if self.reread:
            batch = self._skip_seen(batch)
        for source, part, valid in self.decoded(batch, outs):
            buffer.push_many(
                part,
                [
                    (
                        ev.ts,
                        new_record(
                            BufferedRecord,
                            (source, ev, origin, rec.key.decode("utf-8", "replace") if rec.key else None, rec.value),
                        ),
                    )
                    for origin, rec, ev in valid
                ],
            )
        if fetched is not batch:  # skipped records were read too
            for tp, recs in fetched.items():
                if recs:
                    self.read_to((tp.topic, tp.partition), recs[-1].offset + 1)
        for tp in list(self.stage.assigned):
            hw = consumer.highwater(tp)
            if hw is None:
                continue  # not fetched yet: its state is unknown, it holds the watermark
            part = (tp.topic, tp.partition)
            pos = self.positions.get(part)
            if pos is None:
                try:  # nothing delivered yet: where is the consumer (committed offset)?
                    pos = await consumer.position(tp)
                except Exception:
                    continue
                self.positions[part] = pos
            else:
                self.rt.lag[part] = max(0, hw - pos)
            buffer.set_caught_up(part, pos >= hw)
        released = 0
        for r in buffer.ready():
            outs.extend(engine.process_event(r.source, r.event))
            released += 1
        self._flow_control()
        self._stall_check(released > 0)
        self._fetch_watch()
        return outs, sum(len(recs) for recs in fetched.values())

    def read_to(self, part: tuple[str, int], next_offset: int) -> None:
        self.positions[part] = next_offset

    def _skip_seen(self, batch: dict) -> dict:
        """Records read again after a restore: only those the snapshot held."""
        kept = {}
        for tp, recs in batch.items():
            part = (tp.topic, tp.partition)
            again = self.reread.get(part)
            if again is None or not recs:
                kept[tp] = recs
                continue
            end, offsets = again
            kept[tp] = [r for r in recs if r.offset >= end or r.offset in offsets]
            if recs[-1].offset + 1 >= end:
                del self.reread[part]
        return kept

    def _stall_check(self, moved: bool) -> None:
        """Say once a minute why events are held, when they have been held
        for STALL_WARN_S: which partition holds the watermark, and in what state."""
        now = self.clock()
        if moved or not len(self.buffer):
            self.held_since = now
            return
        if now - self.held_since < STALL_WARN_S or now - self.stall_logged < 60:
            return
        self.stall_logged = now
        buf = self.buffer
        w = buf.watermark()
        holders = [p for p, m in buf.part_max.items() if m == w]
        paused = {(tp.topic, tp.partition) for tp in self.stage.consumer.paused()}
        since = [None if (t := buf.caught_up.get(p)) is None else _secs(now - t) + " ago" for p in holders]
        log.warning(
            "events held for %s: %d buffered, event time %s held by %s (caught up: %s, lag %s, "
            "paused in the consumer %s); %d partitions paused by flow control",
            _secs(now - self.held_since),
            len(buf),
            _event_time(w),
            holders,
            since,
            [self.rt.lag.get(p) for p in holders],
            [p in paused for p in holders],
            len(self.paused),
        )

    def _fetch_watch(self) -> None:
        """Every partition we have not paused must be fetched. If the client
        has fetched others for `fetch_stall_s` (10 s) but not this one (its
        high watermark then goes stale: the partition would look caught up
        and idle, and its events would never come), resume it and seek it to
        its position, which restarts its fetch state. Seen once: a soak under
        heavy CPU contention stalled for minutes behind one partition."""
        now = self.clock()
        if now - self.fetch_checked < self.fetch_stall_s / 2:
            return
        self.fetch_checked = now
        consumer = self.stage.consumer
        polled = {}
        for tp in self.stage.assigned:
            try:
                polled[tp] = consumer.last_poll_timestamp(tp)
            except Exception:
                pass
        fresh = max((t for t in polled.values() if t is not None), default=None)
        if fresh is None:
            return
        for tp, t in polled.items():
            pos = self.positions.get((tp.topic, tp.partition))
            if tp in self.paused or t is None or fresh - t < self.fetch_stall_s * 1000 or pos is None:
                continue
            log.warning(
                "partition %s:%d not fetched for %s while others are: resuming it at offset %d",
                tp.topic,
                tp.partition,
                _secs((fresh - t) / 1000),
                pos,
            )
            consumer.resume(tp)
            consumer.seek(tp, pos)

    def _flow_control(self) -> None:
        """Keep the reorder buffer bounded. Busy partitions keep the fetcher's
        buffers full and can starve the one partition that holds the
        watermark; when the buffer grows large, pause every partition that is
        ahead of the watermark, so the consumer fetches the one behind."""
        buffer, assigned, consumer = self.buffer, self.stage.assigned, self.stage.consumer
        if len(buffer) <= self.max_buffer // 2:
            ahead: set = set()
        elif len(buffer) > self.max_buffer or self.paused:
            # Recomputed every time: the partition at the watermark changes,
            # and it must never stay paused (that would stall everything).
            w = buffer.watermark()
            ahead = {tp for tp in assigned if buffer.part_max.get((tp.topic, tp.partition), -INF) > w}
            if len(buffer) <= self.max_buffer:
                ahead &= self.paused  # between the marks: only keep pauses still ahead
        else:
            return
        resume = self.paused - ahead
        pause = ahead - self.paused
        if resume:
            consumer.resume(*(resume & assigned))
        if pause:
            consumer.pause(*pause)
        self.paused = ahead

    # -- rules and figures ----------------------------------------------------------
    def apply_rules(self, rs: RuleSet) -> None:
        report = self.engine.replace_rules(rs)
        log.info(
            "rules reloaded (version %s): kept %s, added %s, changed %s, removed %s",
            rs.version,
            report["kept"],
            report["added"],
            report["changed"],
            report["removed"],
        )

    def evaluating_engines(self) -> list[Engine]:
        return [self.engine]


def direct_worker(
    *,
    engine: Engine,
    snapshots: SnapshotFile,
    input_topics: dict[str, str],
    partition_idle_s: float = 0.5,
    partition_live_delay_ms: int = 50,
    max_buffer: int = 20_000,
    **common: Any,
) -> Runtime:
    """The runtime in direct mode (what `anomalyd run` starts without ANOMALYD_SHARDS)."""
    strategy = Direct(
        engine,
        snapshots,
        input_topics,
        partition_idle_s=partition_idle_s,
        partition_live_delay_ms=partition_live_delay_ms,
        max_buffer=max_buffer,
    )
    return Runtime(input_topics=input_topics, strategies=[strategy], **common)
