"""Release records to the engine in event-time order across partitions.

Each partition is read in its own order and some run ahead of others. The
buffer holds a decoded event until every partition that may still deliver
older events has moved past its `ts` (the watermark: the slowest active
partition's largest `ts`), then releases events sorted by `ts`. The engine
thus sees one time-ordered stream, exactly as `anomalyd replay` does on a
time-ordered file, and a fast partition cannot make another look late or
silent. A partition whose state is not known yet holds the others back; one
that is caught up (position at its high watermark) stops holding them back
only after `idle_s` seconds of wall-clock time without new data, so a producer that writes one
topic a little behind another does not make that topic look silent or late
(the idea of Kafka Streams' max.task.idle.ms). Wall-clock time only decides
how long to wait for data, never what a window holds.
"""

from __future__ import annotations

import heapq
import time
from typing import Any, Callable, Iterator

INF = float("inf")
Part = tuple[str, int]  # an input partition: (topic, partition)
LIVE_HORIZON_MS = 10_000  # a partition whose last ts is this close to the wall clock carries live traffic


class ReorderBuffer:
    def __init__(
        self,
        idle_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        live_delay_ms: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.heap: list[tuple[int, int, Any]] = []
        self.seq = 0
        self.part_max: dict[Part, int] = {}
        # partition -> None (has data to read, or unknown) or when it was first seen caught up
        self.caught_up: dict[Part, float | None] = {}
        self.idle_s = idle_s
        self.clock = clock
        self.last_push = -INF
        # Live traffic (ts near the wall clock): a caught-up partition's next
        # event will not be older than `live_delay_ms` before now, so it holds
        # the stream back only that far (Flink's bounded out-of-orderness),
        # not until its next event. 0 turns this off.
        self.live_delay_ms = live_delay_ms
        self.wall = wall

    def __len__(self) -> int:
        return len(self.heap)

    def assign(self, parts: list[Part]) -> None:
        """Partitions whose state is unknown until their first fetch."""
        for p in parts:
            self.caught_up.setdefault(p, None)

    def revoke(self, parts: list[Part]) -> None:
        for p in parts:
            self.caught_up.pop(p, None)
            self.part_max.pop(p, None)

    def push(self, part: Part, ts: int, item: Any) -> None:
        self.advance(part, ts)
        if self.caught_up.get(part) is not None:
            self.caught_up[part] = None  # new data: active again; idle counts from its next catch-up
        self.seq += 1
        heapq.heappush(self.heap, (ts, self.seq, item))

    def push_many(self, part: Part, items: list[tuple[int, Any]]) -> None:
        """`push` of one partition's (ts, item)s of a batch, its progress
        recorded once."""
        if not items:
            return
        self.advance(part, max(ts for ts, _ in items))
        if self.caught_up.get(part) is not None:
            self.caught_up[part] = None
        heap, seq, heappush = self.heap, self.seq, heapq.heappush
        for ts, item in items:
            seq += 1
            heappush(heap, (ts, seq, item))
        self.seq = seq

    def advance(self, part: Part, ts: int) -> None:
        """A partition has moved to `ts` without an item here: scale-out
        shards learn the progress of every input partition from the router's
        markers, also of events routed to other shards."""
        now = self.clock()
        if now - self.last_push > self.idle_s:
            # Data resumes after a lull of the whole stream (or at start-up):
            # every quiet partition gets a fresh grace period to deliver its share.
            for p, since in self.caught_up.items():
                if since is not None:
                    self.caught_up[p] = now
        self.last_push = now
        m = self.part_max.get(part)
        if m is None or ts > m:
            self.part_max[part] = ts

    def set_caught_up(self, part: Part, caught_up: bool) -> None:
        if not caught_up:
            self.caught_up[part] = None
        elif self.caught_up.get(part) is None:
            self.caught_up[part] = self.clock()

    def watermark(self) -> float:
        w = INF
        idle_before = self.clock() - self.idle_s
        floor = self.wall() * 1000 - self.live_delay_ms if self.live_delay_ms else -INF
        for p, since in self.caught_up.items():
            if since is None or since > idle_before:  # may still deliver older events
                m = self.part_max.get(p, -INF)
                if since is not None and m < floor and m >= floor - LIVE_HORIZON_MS:
                    m = floor  # caught up on live traffic: its next event is at least this recent
                if m < w:
                    w = m
        return w

    def ready(self) -> Iterator[Any]:
        """Pop every item at or before the watermark, in (ts, arrival) order."""
        w = self.watermark()
        heap = self.heap
        while heap and heap[0][0] <= w:
            yield heapq.heappop(heap)[2]

    def items(self) -> list[Any]:
        return [item for _, _, item in sorted(self.heap)]
