"""Bucketed sliding windows, shared by every windowed rule type.

A window of `window` ms is counted in buckets of a tenth of it (contract
section 3). A group's state (WinState) keeps its buckets and the running
totals of the current window (`tot`) and, for surge's previous window, of
the one before it (`tot2`), as of bucket index `at`. An event in the current
bucket just adds to the totals; they are folded again from the buckets only
when the stream's time has crossed a bucket boundary, which keeps the cost
per event constant.

How a value enters a bucket and how buckets add up is an Aggregator: one
class per function (as quix-streams has one per aggregation), used by count,
ratio, surge, aggregate and change's mean baseline alike.

Offset baselines (surge `baseline: offset`, e.g. the same 10 minutes a week
ago) keep history at a coarser grain: one slot per `window`, in a ring of
`offset / window + 2` slots (History), so a week of 10-minute windows costs
1,010 slots per group, not a week of fine buckets. The baseline window
straddles two slots; it takes each in proportion to the overlap.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import Any

EVIDENCE = 10  # event ids kept per windowed group
DISTINCT_CAP = 1_000  # distinct values kept per group; past it the figure is a lower bound


class WinState:
    """A windowed group's buckets, running totals and recent evidence ids."""

    __slots__ = ("buckets", "evidence", "at", "tot", "tot2", "sched", "hist")

    def __init__(self, evidence: bool = True) -> None:
        self.buckets: dict[int, Any] = {}
        self.evidence: deque | None = deque(maxlen=EVIDENCE) if evidence else None
        self.at = -1
        self.tot: Any = 0
        self.tot2: Any = 0
        self.sched: int | None = None  # last bucket whose age-out moments were scheduled
        self.hist: History | None = None  # offset baselines only


def prune(buckets: dict, lo: int) -> None:
    """Drop buckets at or before index `lo`: they can never count again."""
    for k in [k for k in buckets if k <= lo]:
        del buckets[k]


class Aggregator:
    """One aggregation over a bucketed window, over `spans` windows (1, or 2
    when the previous window is the baseline). Totals are (count, x) lists
    except for Count, whose totals are plain ints."""

    name = ""
    capped = 0  # values not kept because a group reached its cap (distinct)

    def __init__(self, n: int, spans: int = 1):
        self.n = n  # buckets per window
        self.spans = spans

    # -- per function ---------------------------------------------------------
    def empty(self) -> Any:
        return [0, None]

    def put(self, cell: Any, v: Any) -> Any:
        """Add a value to a cell (or a running total); returns the cell."""
        raise NotImplementedError

    def merge(self, acc: Any, cell: Any) -> Any:
        raise NotImplementedError

    def figure(self, tot: Any) -> Any:
        """The aggregate of a total; None when no value was counted."""
        raise NotImplementedError

    @staticmethod
    def count(tot: Any) -> int:
        return tot[0]

    # -- shared ---------------------------------------------------------------
    def add(self, st: WinState, v: Any, k: int, cur: int | None) -> None:
        """An event's value into bucket k; with `cur` (the totals are as of
        bucket cur), into the running total of the window it falls in."""
        b = st.buckets
        cell = b.get(k)
        b[k] = self.put(self.empty() if cell is None else cell, v)
        if cur is not None:
            n = self.n
            if cur - n < k <= cur:
                st.tot = self.put(st.tot, v)
            elif self.spans == 2 and cur - 2 * n < k <= cur - n:
                st.tot2 = self.put(st.tot2, v)

    def totals(self, st: WinState, cur: int) -> None:
        """Fold the buckets again as of bucket `cur`."""
        n = self.n
        mid = cur - n
        lo = mid - n if self.spans == 2 else mid
        buckets = st.buckets
        if len(buckets) > self.spans * n + 2:
            prune(buckets, lo)
        tot, tot2 = self.empty(), self.empty()
        for k, cell in buckets.items():
            if mid < k <= cur:
                tot = self.merge(tot, cell)
            elif lo < k <= mid:
                tot2 = self.merge(tot2, cell)
        st.at, st.tot, st.tot2 = cur, tot, tot2


class Count(Aggregator):
    name = "count"

    def empty(self) -> int:
        return 0

    def put(self, cell: int, v: Any) -> int:
        return cell + 1

    def merge(self, acc: int, cell: int) -> int:
        return acc + cell

    def figure(self, tot: int) -> int:
        return tot

    @staticmethod
    def count(tot: int) -> int:
        return tot

    def add(self, st: WinState, v: Any, k: int, cur: int | None) -> None:
        # The busiest aggregation: Aggregator.add without the calls.
        b = st.buckets
        b[k] = b.get(k, 0) + 1
        if cur is not None:
            n = self.n
            if cur - n < k <= cur:
                st.tot += 1
            elif self.spans == 2 and cur - 2 * n < k <= cur - n:
                st.tot2 += 1

    def totals(self, st: WinState, cur: int) -> None:
        n = self.n
        mid = cur - n
        buckets = st.buckets
        if self.spans == 1:
            if len(buckets) > n + 2:
                prune(buckets, mid)
            st.at, st.tot = cur, sum(c for k, c in buckets.items() if mid < k <= cur)
            return
        lo = mid - n
        if len(buckets) > 2 * n + 2:
            prune(buckets, lo)
        a = p = 0
        for k, c in buckets.items():
            if mid < k <= cur:
                a += c
            elif lo < k <= mid:
                p += c
        st.at, st.tot, st.tot2 = cur, a, p


class Sum(Aggregator):
    name = "sum"

    def empty(self) -> list:
        return [0, 0]

    def put(self, cell: list, v: Any) -> list:
        cell[0] += 1
        cell[1] += v
        return cell

    def merge(self, acc: list, cell: list) -> list:
        acc[0] += cell[0]
        acc[1] += cell[1]
        return acc

    def figure(self, tot: list) -> Any:
        return tot[1] if tot[0] else None


class Avg(Sum):
    name = "avg"

    def figure(self, tot: list) -> Any:
        return tot[1] / tot[0] if tot[0] else None


class Min(Aggregator):
    name = "min"
    better = staticmethod(min)

    def put(self, cell: list, v: Any) -> list:
        cell[0] += 1
        cell[1] = v if cell[1] is None else self.better(cell[1], v)
        return cell

    def merge(self, acc: list, cell: list) -> list:
        if cell[0]:
            acc[0] += cell[0]
            acc[1] = cell[1] if acc[1] is None else self.better(acc[1], cell[1])
        return acc

    def figure(self, tot: list) -> Any:
        return tot[1]


class Max(Min):
    name = "max"
    better = staticmethod(max)


class Distinct(Aggregator):
    """Distinct values: a set per bucket, at most DISTINCT_CAP values in a
    group's buckets together; values past the cap are counted in `capped`
    and the figure is then a lower bound."""

    name = "distinct"

    def empty(self) -> list:
        return [0, set()]

    def put(self, cell: list, v: Any) -> list:
        cell[0] += 1
        cell[1].add(v)
        return cell

    def add(self, st: WinState, v: Any, k: int, cur: int | None) -> None:
        cell = st.buckets.get(k)
        if cell is None:
            cell = st.buckets[k] = self.empty()
        if v not in cell[1] and sum(len(c[1]) for c in st.buckets.values()) >= DISTINCT_CAP:
            self.capped += 1
            cell[0] += 1
            v = None  # counted as an event, not as a value
        else:
            self.put(cell, v)
        if cur is not None:
            n = self.n
            if cur - n < k <= cur:
                tot = st.tot
            elif self.spans == 2 and cur - 2 * n < k <= cur - n:
                tot = st.tot2
            else:
                return
            tot[0] += 1
            if v is not None:
                tot[1].add(v)

    def merge(self, acc: list, cell: list) -> list:
        acc[0] += cell[0]
        acc[1] |= cell[1]
        return acc

    def figure(self, tot: list) -> Any:
        return len(tot[1]) if tot[0] else None


class Ratio(Aggregator):
    """(events matching the numerator, events) per bucket as [num, den]; the
    value put is whether the event matches. Totals are the scalars
    tot = num, tot2 = den (the layout snapshots have always had)."""

    name = "ratio"

    def add(self, st: WinState, hit: Any, k: int, cur: int | None) -> None:
        cell = st.buckets.get(k)
        if cell is None:
            cell = st.buckets[k] = [0, 0]
        cell[1] += 1
        if hit:
            cell[0] += 1
        if cur is not None and cur - self.n < k <= cur:
            st.tot2 += 1
            if hit:
                st.tot += 1

    def totals(self, st: WinState, cur: int) -> None:
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            prune(st.buckets, lo)
        num = den = 0
        for k, cell in st.buckets.items():
            if lo < k <= cur:
                num += cell[0]
                den += cell[1]
        st.at, st.tot, st.tot2 = cur, num, den


AGGREGATORS: dict[str, type[Aggregator]] = {a.name: a for a in (Count, Sum, Avg, Min, Max, Distinct)}


class History:
    """Coarse history for an offset baseline: per slot of one window, the
    number of events and the aggregate's partial figure (sum for count, sum
    and avg; min or max; the number of distinct values), in a ring of
    compact arrays: 16 bytes a slot."""

    __slots__ = ("n", "top", "count", "value")

    def __init__(self, slots: int):
        self.n = slots
        self.top = -1  # highest slot index written
        self.count = array("d", bytes(8 * slots))
        self.value = array("d", bytes(8 * slots))

    def _slot(self, s: int) -> int:
        """Ring index of slot s, clearing slots skipped since the last write."""
        n = self.n
        if s > self.top:
            for x in range(max(self.top + 1, s - n + 1), s + 1):
                self.count[x % n] = 0.0
                self.value[x % n] = 0.0
            self.top = s
        return s % n

    def add(self, s: int, v: float, fn: str) -> None:
        if s <= self.top - self.n:
            return  # older than the ring: no baseline will ask for it
        i = self._slot(s)
        c = self.count[i]
        if fn == "min":
            self.value[i] = v if c == 0 else min(self.value[i], v)
        elif fn == "max":
            self.value[i] = v if c == 0 else max(self.value[i], v)
        else:
            self.value[i] += v
        self.count[i] = c + 1

    def get(self, s: int) -> tuple[float, float]:
        if s > self.top or s <= self.top - self.n:
            return 0.0, 0.0
        i = s % self.n
        return self.count[i], self.value[i]

    def baseline(self, start: int, width: int, fn: str) -> tuple[float, Any]:
        """(events, figure) of the span [start, start + width) ms, slots of
        `width` ms: the two slots it straddles, each taken in proportion."""
        s = start // width
        frac = 1 - (start - s * width) / width  # share of slot s in the span
        c1, v1 = self.get(s)
        c2, v2 = self.get(s + 1)
        events = c1 * frac + c2 * (1 - frac)
        if fn in ("min", "max"):
            vals = [v for c, v in ((c1, v1), (c2, v2)) if c]
            pick = min if fn == "min" else max
            return events, (pick(vals) if vals else None)
        total = v1 * frac + v2 * (1 - frac)
        if fn == "avg":
            return events, (total / events if events else None)
        return events, (total if events else None)

    def dump(self) -> tuple:
        return (self.n, self.top, self.count.tobytes(), self.value.tobytes())

    @classmethod
    def load(cls, data: tuple) -> "History":
        h = cls(data[0])
        h.top = data[1]
        h.count = array("d")
        h.count.frombytes(data[2])
        h.value = array("d")
        h.value.frombytes(data[3])
        return h
