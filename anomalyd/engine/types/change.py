"""change: the event's `field` differs from the group's baseline by more
than `pct` percent. Baseline `previous` keeps one (value, event id) per
group, the compact state the 1M-SKU memory budget asks for; `mean` keeps
bucketed (sum, count) over `window`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..lifecycle import Output
from ..rules.model import DurationText, ValueRule
from ..windows import Avg, WinState
from .base import _SKIP, Runner


class ChangeRule(ValueRule):
    type: Literal["change"]
    pct: float = Field(gt=0, description="Fires when the value differs from the baseline by more than this percent")
    direction: Literal["up", "down", "both"] = "both"
    baseline: Literal["previous", "mean"] = "previous"
    window: DurationText | None = Field(default=None, description="Required with baseline: mean")

    @model_validator(mode="after")
    def _mean_needs_window(self) -> "ChangeRule":
        if self.baseline == "mean" and self.window is None:
            raise ValueError("baseline 'mean' needs a window")
        return self


class ChangeRunner(Runner):
    RESOLVED = "{rule_id} resolved{where}: value {value} is back within the change from {baseline}"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.get = self.value_of(rule)
        self.pct = rule.pct
        self.up = rule.direction in ("up", "both")
        self.down = rule.direction in ("down", "both")
        self.mean = rule.baseline == "mean"
        if self.mean:
            self.window = rule.ms("window")
            self.b = max(1, self.window // 10)
            self.n = -(-self.window // self.b)
            self.agg = Avg(self.n)  # cells [count, sum], as aggregate's avg

    def _previous(self, key: Any, v: float, eid: str) -> Any:
        """The group's previous (value, event id), replaced by this event's.
        GroupStore.get/put inlined: this is the 1M-SKU hot path."""
        store = self.store
        young = store.young
        prev = young.get(key)
        young[key] = (v, eid)
        if prev is None:
            if store.old:
                prev = store.old.pop(key, None)
            if prev is None and len(young) + len(store.old) > store.cap:
                store.evict_one()
        return prev

    def _mean(self, key: Any, v: float, ev: Any, now: int) -> float | None:
        """Mean of the group's values in the window (before this event), then add it."""
        store = self.store
        st = store.get(key)
        if st is None:
            st = WinState(evidence=False)
            store.put(key, st)
        agg = self.agg
        cur = now // self.b
        if st.at != cur:  # crossed a bucket boundary: fold the running total again
            agg.totals(st, cur)
        base = agg.figure(st.tot)
        agg.add(st, v, ev.ts // self.b, cur)
        return base

    def dump_state(self) -> Any:
        return {"cells": "count,sum"} if self.mean else None

    def load_state(self, data: Any) -> None:
        if self.mean and not data:  # a snapshot of before 2026-12-02: cells were [sum, count]
            for _, st in self.store.items():
                st.buckets = {k: [c[1], c[0]] for k, c in st.buckets.items()}
                st.at = -1  # totals folded again at the next event

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        # Runner.group_key, inlined on this hot path.
        if self.where is not None and not self.where(ev):
            return
        key = self.key_of(ev)
        if key is _SKIP:
            self.skipped_no_group += 1
            return
        if self.owns is not None and not self.owns(key):
            return
        v = self.get(ev)
        if type(v) is not float and type(v) is not int:
            return  # attrs.NAME may hold a string, an expr no value; a change needs a number
        if self.mean:
            prev = None
            base = self._mean(key, v, ev, now)
        else:
            prev = self._previous(key, v, ev.event_id)
            base = prev[0] if prev is not None else None
        if not base:  # no baseline yet, or 0: a percentage is undefined
            return
        change = (v - base) / abs(base) * 100.0
        pct = self.pct
        holds = (self.up and change > pct) or (self.down and change < -pct)
        if holds or key in self.life.active or key in self.life.pending:  # evidence and details only when it matters
            evidence = [prev[1], ev.event_id] if prev is not None else [ev.event_id]
            bound = base * (1 + pct / 100) if change > 0 else base * (1 - pct / 100)
            self.life.update(
                key,
                holds,
                now,
                v,
                bound,
                evidence,
                {"baseline": base, "change_pct": round(change, 2), "event_id": ev.event_id},
                out,
            )


MODEL, RUNNER, DETAILS = ChangeRule, ChangeRunner, {"baseline", "change_pct", "event_id"}
