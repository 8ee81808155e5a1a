"""ratio: (events matching `numerator`) / (events matching `where`) in
`window` satisfies `op value`, with at least `min_count` in the denominator."""

from __future__ import annotations

from typing import Any, Hashable

from ..lifecycle import Output
from ..rules.conditions import compile_all
from .base import NUMERIC_OPS, WindowedRunner, WinState


class RatioRunner(WindowedRunner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.num = compile_all(rule.numerator)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.min_count = rule.min_count

    def add(self, st: WinState, ev: Any, k: int, cur: int | None) -> None:
        cell = st.buckets.get(k)
        if cell is None:
            cell = st.buckets[k] = [0, 0]
        hit = self.num(ev)
        cell[1] += 1
        if hit:
            cell[0] += 1
            st.evidence.append(ev.event_id)
        if cur is not None and cur - self.n < k <= cur:
            st.tot2 += 1
            if hit:
                st.tot += 1

    def totals(self, st: WinState, cur: int) -> None:
        lo = cur - self.n
        if len(st.buckets) > self.n + 2:
            self.prune(st.buckets, lo)
        num = den = 0
        for k, cell in st.buckets.items():
            if lo < k <= cur:
                num += cell[0]
                den += cell[1]
        st.at, st.tot, st.tot2 = cur, num, den

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        num, den = (st.tot, st.tot2) if st is not None else (0, 0)
        ratio = num / den if den else 0.0
        holds = den >= self.min_count and self.op(ratio, self.value)
        if holds or key in self.life.active:
            self.life.update(key, holds, now, round(ratio, 6), self.value, evidence or [],
                             {"numerator": num, "denominator": den}, out)
