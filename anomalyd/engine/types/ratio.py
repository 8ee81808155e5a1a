"""ratio: (events matching `numerator`) / (events matching `where`) in
`window` satisfies `op value`, with at least `min_count` in the denominator."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from ..rules.conditions import compile_all
from .base import _SKIP, NUMERIC_OPS, WindowedRunner, WinState


class RatioRunner(WindowedRunner):
    def __init__(self, rule, config):
        super().__init__(rule, config)
        self.num = compile_all(rule.numerator)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.min_count = rule.min_count

    def _judge(self, key: Hashable, st: WinState | None, now: int, evidence: list, out: list[Output]) -> None:
        num = den = 0
        if st is not None:
            cur = now // self.b
            lo = cur - self.n
            if len(st.buckets) > self.n + 2:
                self.prune(st.buckets, lo)
            for k, cell in st.buckets.items():
                if lo < k <= cur:
                    num += cell[0]
                    den += cell[1]
        ratio = num / den if den else 0.0
        holds = den >= self.min_count and self.op(ratio, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, round(ratio, 6), self.value, evidence,
                             {"numerator": num, "denominator": den}, out)

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
        cell = st.buckets.get(k)
        if cell is None:
            cell = st.buckets[k] = [0, 0]
        cell[1] += 1
        if self.num(ev):
            cell[0] += 1
            st.evidence.append(ev.event_id)
        self.schedule(key, k, now)
        self._judge(key, st, now, list(st.evidence), out)

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        self._judge(key, self.store.get(key), t, [], out)
