"""count: the number of matching events in `window` satisfies `op value`."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from .base import NUMERIC_OPS, WindowedRunner, WinState


class CountRunner(WindowedRunner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value

    def add(self, st: WinState, ev: Any, k: int, cur: int | None) -> None:
        st.buckets[k] = st.buckets.get(k, 0) + 1
        st.evidence.append(ev.event_id)
        if cur is not None and cur - self.n < k <= cur:
            st.tot += 1

    def totals(self, st: WinState, cur: int) -> None:
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            self.prune(st.buckets, lo)
        st.at = cur
        st.tot = sum(c for k, c in st.buckets.items() if lo < k <= cur)

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        c = st.tot if st is not None else 0
        holds = self.op(c, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, c, self.value, evidence or [], {"count": c}, out)
