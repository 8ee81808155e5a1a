"""surge: matching events in the current `window` exceed the previous
window's count by more than `pct` percent, with at least `min_count` now."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from .base import WindowedRunner, WinState


class SurgeRunner(WindowedRunner):
    spans = 2

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.factor = 1 + rule.pct / 100
        self.min_count = rule.min_count
        self.judge_from = None  # first moment a full previous window has been observed

    def on_start(self, now: int, out: list[Output]) -> None:
        # Before two windows of stream time, the previous window is unknown,
        # not empty: judging it as zero would make every group "surge".
        self.judge_from = now + 2 * self.window

    def add(self, st: WinState, ev: Any, k: int, cur: int | None) -> None:
        st.buckets[k] = st.buckets.get(k, 0) + 1
        st.evidence.append(ev.event_id)
        if cur is not None:
            n = self.n
            if cur - n < k <= cur:
                st.tot += 1
            elif cur - 2 * n < k <= cur - n:
                st.tot2 += 1

    def totals(self, st: WinState, cur: int) -> None:
        mid = cur - self.n
        lo = mid - self.n
        if len(st.buckets) > 2 * self.n + 2:
            self.prune(st.buckets, lo)
        cur_n = prev_n = 0
        for k, c in st.buckets.items():
            if mid < k <= cur:
                cur_n += c
            elif lo < k <= mid:
                prev_n += c
        st.at, st.tot, st.tot2 = cur, cur_n, prev_n

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        cur_n, prev_n = (st.tot, st.tot2) if st is not None else (0, 0)
        bar = prev_n * self.factor
        holds = cur_n >= self.min_count and cur_n > bar and now >= self.judge_from
        if holds or key in self.life.active:
            change = round((cur_n - prev_n) / prev_n * 100, 2) if prev_n else None
            self.life.update(key, holds, now, cur_n, bar, evidence or [],
                             {"current": cur_n, "previous": prev_n, "change_pct": change}, out)
