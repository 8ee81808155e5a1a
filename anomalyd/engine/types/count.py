"""count: the number of matching events in `window` satisfies `op value`."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from .base import _SKIP, NUMERIC_OPS, WindowedRunner, WinState


class CountRunner(WindowedRunner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value

    def _total(self, st: WinState, cur: int) -> int:
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            self.prune(st.buckets, lo)
        st.at = cur
        st.tot = sum(c for k, c in st.buckets.items() if lo < k <= cur)
        return st.tot

    def _judge(self, key: Hashable, c: int, now: int, evidence: Any, out: list[Output]) -> None:
        holds = self.op(c, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, c, self.value, evidence or [], {"count": c}, out)

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        if self.where is not None and not self.where(ev):
            return
        key = self.key_of(ev)
        if key is _SKIP:
            self.skipped_no_group += 1
            return
        st = self.store.get(key)
        if st is None:
            st = WinState()
            self.store.put(key, st)
        b = self.b
        k = ev.ts // b
        cur = now // b
        st.buckets[k] = st.buckets.get(k, 0) + 1
        st.evidence.append(ev.event_id)
        if st.at == cur:
            if cur - self.n < k <= cur:
                st.tot += 1
        else:
            self._total(st, cur)
        self.schedule(key, k, now)
        self._judge(key, st.tot, now, st.evidence, out)

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        st = self.store.get(key)
        self._judge(key, self._total(st, t // self.b) if st is not None else 0, t, None, out)
