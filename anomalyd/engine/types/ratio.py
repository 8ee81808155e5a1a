"""ratio: (events matching `numerator`) / (events matching `where`) in
`window` satisfies `op value`, with at least `min_count` in the denominator."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from ..rules.conditions import compile_all
from .base import _SKIP, NUMERIC_OPS, WindowedRunner, WinState


class RatioRunner(WindowedRunner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.num = compile_all(rule.numerator)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.min_count = rule.min_count

    def _totals(self, st: WinState, cur: int) -> None:
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            self.prune(st.buckets, lo)
        num = den = 0
        for k, cell in st.buckets.items():
            if lo < k <= cur:
                num += cell[0]
                den += cell[1]
        st.at, st.tot, st.tot2 = cur, num, den

    def _judge(self, key: Hashable, num: int, den: int, now: int, evidence: Any, out: list[Output]) -> None:
        ratio = num / den if den else 0.0
        holds = den >= self.min_count and self.op(ratio, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, round(ratio, 6), self.value, evidence or [],
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
        b = self.b
        k = ev.ts // b
        cur = now // b
        cell = st.buckets.get(k)
        if cell is None:
            cell = st.buckets[k] = [0, 0]
        hit = self.num(ev)
        cell[1] += 1
        if hit:
            cell[0] += 1
            st.evidence.append(ev.event_id)
        if st.at == cur:
            if cur - self.n < k <= cur:
                st.tot2 += 1
                if hit:
                    st.tot += 1
        else:
            self._totals(st, cur)
        self.schedule(key, k, now)
        self._judge(key, st.tot, st.tot2, now, st.evidence, out)

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        st = self.store.get(key)
        if st is None:
            self._judge(key, 0, 0, t, None, out)
            return
        self._totals(st, t // self.b)
        self._judge(key, st.tot, st.tot2, t, None, out)
