"""Bounded per-rule group state, event-time timers and the stream clock."""

from __future__ import annotations

import heapq
from typing import Any, Hashable, Iterator

INF = float("inf")


class GroupStore:
    """State of a rule's groups, bounded in two ways.

    Idle groups are evicted by generations rather than per-group timestamps
    (which would cost ~30 bytes a group): groups touched since the last
    rotation live in `young`, the rest in `old`; each rotation (every
    `idle_ms` of event time) drops `old`. A group is thus evicted between
    one and two idle periods after its last event. `cap` bounds the total
    against floods of unique keys.
    """

    __slots__ = ("young", "old", "cap", "idle_ms", "rotate_at", "evicted")

    def __init__(self, idle_ms: int, cap: int):
        self.young: dict[Hashable, Any] = {}
        self.old: dict[Hashable, Any] = {}
        self.cap = cap
        self.idle_ms = idle_ms
        self.rotate_at: float = INF  # set on first tick
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def get(self, key: Hashable) -> Any:
        v = self.young.get(key)
        if v is None and self.old:
            v = self.old.pop(key, None)
            if v is not None:
                self.young[key] = v
        return v

    def put(self, key: Hashable, value: Any) -> None:
        young = self.young
        if key not in young:
            young[key] = value
            if len(young) + len(self.old) > self.cap:
                self.evict_one()
        else:
            young[key] = value

    def evict_one(self) -> None:
        if not self.old:
            self.old, self.young = self.young, {}
        # popitem is O(1); which of the idle groups goes first does not matter.
        self.old.popitem()
        self.evicted += 1

    def tick(self, now: int) -> None:
        if now < self.rotate_at:
            if self.rotate_at == INF:
                self.rotate_at = now + self.idle_ms
            return
        if now >= self.rotate_at + self.idle_ms:  # idle for two periods: all go
            self.evicted += len(self.old) + len(self.young)
            self.old, self.young = {}, {}
        else:
            self.evicted += len(self.old)
            self.old, self.young = self.young, {}
        self.rotate_at = now + self.idle_ms

    def pop(self, key: Hashable) -> Any:
        v = self.young.pop(key, None)
        return self.old.pop(key, None) if v is None else v

    def items(self) -> Iterator[tuple[Hashable, Any]]:
        yield from self.old.items()
        yield from self.young.items()

    def load(self, items: list[tuple[Hashable, Any]]) -> None:
        self.young = dict(items)
        self.old = {}


class Wake:
    """The earliest moment any timer of an engine is due, shared by all of
    its timers so the engine compares one number per event."""

    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t: float = INF


class Timers:
    """Moments in event time at which groups must be re-evaluated.

    One heap entry per distinct moment, with the set of groups due then, so
    a thousand events of one group in one bucket cost one entry.
    """

    __slots__ = ("heap", "due", "wake")

    def __init__(self, wake: Wake | None = None) -> None:
        self.heap: list[int] = []
        self.due: dict[int, set] = {}
        self.wake = wake or Wake()

    def add(self, t: int, key: Hashable) -> None:
        s = self.due.get(t)
        if s is None:
            self.due[t] = {key}
            heapq.heappush(self.heap, t)
            if t < self.wake.t:
                self.wake.t = t
        else:
            s.add(key)

    @property
    def next(self) -> float:
        return self.heap[0] if self.heap else INF

    def pop(self) -> tuple[int, set]:
        t = heapq.heappop(self.heap)
        return t, self.due.pop(t)

    def __len__(self) -> int:
        return len(self.heap)

    def dump(self) -> tuple:
        return (list(self.heap), {k: list(s) for k, s in self.due.items()})

    def load(self, data: tuple) -> None:
        heap, due = data
        self.heap = list(heap)
        self.due = {k: set(v) for k, v in due.items()}
        if self.heap and self.heap[0] < self.wake.t:
            self.wake.t = self.heap[0]


class StreamClock:
    """The stream's event time: the largest `ts` seen (contract section 2).

    The engine sees one time-ordered stream. Across Kafka partitions, the
    worker's ReorderBuffer (anomalyd/io/ordering.py) makes the slowest
    partition set the pace before events reach the engine.
    """

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now: int = -1
