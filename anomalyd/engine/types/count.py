"""count: the number of matching events in `window` satisfies `op value`."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from .base import _SKIP, NUMERIC_OPS, WindowedRunner, WinState


class CountRunner(WindowedRunner):
    def __init__(self, rule, config):
        super().__init__(rule, config)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value

    def _count(self, st: WinState, now: int) -> int:
        cur = now // self.b
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            self.prune(st.buckets, lo)
        return sum(c for k, c in st.buckets.items() if lo < k <= cur)

    def _judge(self, key: Hashable, st: WinState | None, now: int, evidence: list, out: list[Output]) -> None:
        c = self._count(st, now) if st is not None else 0
        holds = self.op(c, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, c, self.value, evidence, {"count": c}, out)

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
        k = ev.ts // self.b
        st.buckets[k] = st.buckets.get(k, 0) + 1
        st.evidence.append(ev.event_id)
        self.schedule(key, k, now)
        self._judge(key, st, now, list(st.evidence), out)

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        self._judge(key, self.store.get(key), t, [], out)
