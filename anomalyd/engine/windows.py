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
ago) keep a ring of per-bucket counts (and values) in compact arrays
(History) rather than a week of bucket dicts: 4 bytes a bucket for a count,
about 40 KB per group for a week of a 10-minute window's buckets.
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
    def running(self, st: WinState, k: int, cur: int | None) -> Any:
        """The running total (a list) that an event in bucket k adds to, if any."""
        if cur is None:
            return None
        n = self.n
        if cur - n < k <= cur:
            return st.tot
        if self.spans == 2 and cur - 2 * n < k <= cur - n:
            return st.tot2
        return None

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

    def add(self, st: WinState, v: Any, k: int, cur: int | None) -> None:
        # Aggregator.add without the calls (takings and refunds are hot).
        cell = st.buckets.get(k)
        if cell is None:
            st.buckets[k] = [1, v]
        else:
            cell[0] += 1
            cell[1] += v
        tot = self.running(st, k, cur)
        if tot is not None:
            tot[0] += 1
            tot[1] += v


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
        tot = self.running(st, k, cur)
        if tot is not None:
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


class Outcomes(Aggregator):
    """A sequence's outcomes per bucket, one count per kind ([matched,
    mismatched, missed]); the value put is the kind's index. The running
    total is the list of the window's counts per kind."""

    name = "outcomes"
    KINDS = ("matched", "mismatched", "missed")

    def empty(self) -> list:
        return [0, 0, 0]

    def put(self, cell: list, v: int) -> list:
        cell[v] += 1
        return cell

    def merge(self, acc: list, cell: list) -> list:
        return [acc[0] + cell[0], acc[1] + cell[1], acc[2] + cell[2]]

    def figure(self, tot: list) -> Any:
        return tot


AGGREGATORS: dict[str, type[Aggregator]] = {a.name: a for a in (Count, Sum, Avg, Min, Max, Distinct)}


class History:
    """History for an offset baseline: per bucket of the window's grain, the
    number of events and (for fn other than count) the aggregate's partial
    figure (sum, min or max), in a ring of compact arrays (4 bytes a bucket
    for counts, 8 more for values), so the baseline window is counted in
    exactly the buckets the current window is, `offset` earlier: a periodic
    pattern compares equal with itself."""

    __slots__ = ("n", "top", "count", "value")

    def __init__(self, slots: int, values: bool):
        self.n = slots
        self.top = -1  # highest bucket index written
        self.count = array("f", bytes(4 * slots))
        self.value = array("d", bytes(8 * slots)) if values else None

    def add(self, k: int, v: float, fn: str) -> None:
        n = self.n
        if k <= self.top - n:
            return  # older than the ring: no baseline will ask for it
        if k > self.top:  # clear the buckets skipped since the last write
            for x in range(max(self.top + 1, k - n + 1), k + 1):
                self.count[x % n] = 0.0
                if self.value is not None:
                    self.value[x % n] = 0.0
            self.top = k
        i = k % n
        c = self.count[i]
        self.count[i] = c + 1
        value = self.value
        if value is None:
            return
        if fn == "min":
            value[i] = v if c == 0 else min(value[i], v)
        elif fn == "max":
            value[i] = v if c == 0 else max(value[i], v)
        else:
            value[i] += v

    def baseline(self, lo: int, hi: int, fn: str) -> tuple[float, Any]:
        """(events, figure) of the buckets lo < k <= hi."""
        events = 0.0
        fig: Any = None
        n, top, value = self.n, self.top, self.value
        for k in range(max(lo + 1, top - n + 1), min(hi, top) + 1):
            c = self.count[k % n]
            if not c:
                continue
            events += c
            if value is None:
                continue
            v = value[k % n]
            if fn == "min":
                fig = v if fig is None else min(fig, v)
            elif fn == "max":
                fig = v if fig is None else max(fig, v)
            else:
                fig = v if fig is None else fig + v
        if fn == "count":
            return events, events
        if fn == "avg" and fig is not None:
            fig = fig / events
        return events, fig

    def dump(self) -> tuple:
        return (self.n, self.top, self.count.tobytes(), self.value.tobytes() if self.value is not None else None)

    @classmethod
    def load(cls, data: tuple) -> "History":
        h = cls(data[0], data[3] is not None)
        h.top = data[1]
        h.count = array("f")
        h.count.frombytes(data[2])
        if data[3] is not None:
            h.value = array("d")
            h.value.frombytes(data[3])
        return h
