"""change: the event's `field` differs from the group's baseline by more
than `pct` percent. Baseline `previous` keeps one (value, event id) per
group, the compact state the 1M-SKU memory budget asks for; `mean` keeps
bucketed (sum, count) over `window`."""

from __future__ import annotations

from typing import Any

from ..lifecycle import Output
from ..rules.conditions import getter
from .base import _SKIP, Runner, WinState


class ChangeRunner(Runner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.get = getter(rule.field)
        self.pct = rule.pct
        self.up = rule.direction in ("up", "both")
        self.down = rule.direction in ("down", "both")
        self.mean = rule.baseline == "mean"
        if self.mean:
            self.window = rule.ms("window")
            self.b = max(1, self.window // 10)
            self.n = -(-self.window // self.b)

    def _baseline(self, key: Any, v: float, ev: Any, now: int) -> tuple[float | None, list[str]]:
        store = self.store
        if not self.mean:  # GroupStore.get/put inlined: this is the 1M-SKU hot path
            young = store.young
            prev = young.get(key)
            if prev is None:
                if store.old:
                    prev = store.old.pop(key, None)
                young[key] = (v, ev.event_id)
                if prev is None:
                    if len(young) + len(store.old) > store.cap:
                        store._shrink()
                    return None, []
            else:
                young[key] = (v, ev.event_id)
            return prev[0], [prev[1], ev.event_id]
        st = store.get(key)
        if st is None:
            st = WinState(evidence=False)
            store.put(key, st)
        buckets = st.buckets
        cur = now // self.b
        lo = cur - self.n
        if st.at != cur:  # crossed a bucket boundary: recompute the running totals
            if len(buckets) > self.n + 2:
                self.prune(buckets, lo)
            s = c = 0
            for k, (bs, bc) in buckets.items():
                if lo < k <= cur:
                    s += bs
                    c += bc
            st.at, st.tot, st.tot2 = cur, s, c
        s, c = st.tot, st.tot2
        k = ev.ts // self.b
        if k > lo:
            cell = buckets.get(k)
            if cell is None:
                buckets[k] = [v, 1]
            else:
                cell[0] += v
                cell[1] += 1
            if k <= cur:
                st.tot += v
                st.tot2 += 1
        return (s / c if c else None), [ev.event_id]

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        key = self.group_key(ev)
        if key is _SKIP:
            return
        v = self.get(ev)
        if type(v) is not float and type(v) is not int:
            return  # attrs.NAME may hold a string; a change needs a number
        base, evidence = self._baseline(key, v, ev, now)
        if not base:  # no baseline yet, or 0: a percentage is undefined
            return
        change = (v - base) / abs(base) * 100.0
        pct = self.pct
        holds = (self.up and change > pct) or (self.down and change < -pct)
        if holds or key in self.life.active:
            bound = base * (1 + pct / 100) if change > 0 else base * (1 - pct / 100)
            self.life.update(key, holds, now, v, bound, evidence,
                             {"baseline": base, "change_pct": round(change, 2), "event_id": ev.event_id}, out)
