"""surge: an aggregate of the current `window` (by default the count of
matching events) moved more than `pct` percent from its baseline: the
window just before (`previous`, 环比) or the same window `offset` ago
(`offset`, 同比), going `up`, `down` or `both`."""

from __future__ import annotations

from typing import Any, ClassVar, Hashable, Literal

from pydantic import Field, model_validator

from ..lifecycle import Output
from ..rules.model import DurationText, ValueRule
from ..windows import AGGREGATORS, History, WinState
from .base import WindowedRunner, aggregated

Fn = Literal["count", "sum", "avg", "min", "max", "distinct"]
_EMPTY_IS_ZERO = {"count", "sum", "distinct"}  # an empty window's figure; avg/min/max have none


class SurgeRule(ValueRule):
    value_required: ClassVar[bool] = False
    added_keys: ClassVar[dict[str, Any]] = {
        **ValueRule.added_keys,
        "fn": "count",
        "direction": "up",
        "baseline": "previous",
        "offset": None,
    }

    type: Literal["surge"]
    window: DurationText
    pct: float = Field(gt=0, description="The change that fires, in percent of the baseline")
    min_count: int = Field(
        default=1, ge=1, description="Events needed in the current window (up) or the baseline window (down)"
    )
    fn: Fn = Field(default="count", description="The aggregate compared: count of events, or a function of field/expr")
    direction: Literal["up", "down", "both"] = "up"
    baseline: Literal["previous", "offset"] = Field(
        default="previous", description="previous: the window just before; offset: the same window `offset` ago"
    )
    offset: DurationText | None = Field(default=None, description="With baseline: offset, e.g. 1d or 7d")

    @model_validator(mode="after")
    def _keys_fit(self) -> "SurgeRule":
        if self.fn == "count" and (self.field is not None or self.expr is not None):
            raise ValueError("fn count counts events: field/expr need another fn (sum, avg, min, max, distinct)")
        if self.fn != "count" and self.field is None and self.expr is None:
            raise ValueError(f"fn {self.fn} needs a field or an expr")
        if self.baseline == "offset":
            if self.offset is None:
                raise ValueError("baseline 'offset' needs an offset, e.g. offset: 7d")
            if self.fn == "distinct":
                raise ValueError(
                    "fn distinct cannot use baseline 'offset': its history keeps no value sets (bounded state); use baseline 'previous'"
                )
        elif self.offset is not None:
            raise ValueError("offset goes with baseline: offset")
        return self


class SurgeRunner(WindowedRunner):
    RESOLVED = "{rule_id} resolved{where}: {current} in {window} against {previous} before"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.fn = rule.fn
        self.up = rule.direction in ("up", "both")
        self.down = rule.direction in ("down", "both")
        self.rise = 1 + rule.pct / 100
        self.fall = 1 - rule.pct / 100
        self.min_count = rule.min_count
        self.offset = rule.ms("offset") if rule.baseline == "offset" else 0
        self.history = self.offset > 0
        self.spans = 1 if self.history else 2
        self.agg = AGGREGATORS[rule.fn](self.n, self.spans)
        self.get = self.value_of(rule) if rule.fn != "count" else None
        self.counts_events = self.get is None
        self.lag = round(self.offset / self.b)  # the offset in buckets
        self.slots = self.lag + self.n + 2
        self.judge_from: int | None = None  # first moment a whole baseline window has been observed

    def on_start(self, now: int, out: list[Output]) -> None:
        # Before the stream has covered the baseline window, it is unknown,
        # not empty: judging it as zero would make every group "surge".
        self.judge_from = now + (self.offset + self.window if self.offset else 2 * self.window)

    def dump_state(self) -> Any:
        return {"judge_from": self.judge_from}

    def load_state(self, data: Any) -> None:
        if data and data.get("judge_from") is not None:
            self.judge_from = data["judge_from"]

    def put_value(self, ev: Any) -> Any:
        if self.get is None:
            return ev  # counted
        return aggregated(self.fn, self.get(ev))

    def new_state(self) -> WinState:
        st = WinState()
        if self.history:
            st.hist = History(self.slots, values=self.get is not None)
        return st

    def remember(self, st: WinState, ev: Any, v: Any) -> None:
        assert st.hist is not None  # new_state gives offset baselines a history
        st.hist.add(ev.ts // self.b, 1.0 if self.get is None else float(v), self.fn)

    def schedule(self, key: Hashable, k: int, now: int) -> None:
        super().schedule(key, k, now)
        if self.offset:  # the event enters and leaves the baseline window
            b = self.b
            self.timers.add(k * b + self.offset, key)
            self.timers.add((k + self.n) * b + self.offset, key)

    def _figures(self, st: WinState | None, now: int) -> tuple[Any, int, Any, float]:
        """(current figure, events now, baseline figure, events in the baseline)."""
        agg = self.agg
        empty = 0 if self.fn in _EMPTY_IS_ZERO else None
        if st is None:
            return empty, 0, empty, 0
        cur = agg.figure(st.tot)
        n_cur = agg.count(st.tot)
        if self.offset:
            hi = now // self.b - self.lag
            assert st.hist is not None
            n_base, base = st.hist.baseline(hi - self.n, hi, self.fn)
        else:
            base, n_base = agg.figure(st.tot2), agg.count(st.tot2)
        return (empty if cur is None else cur), n_cur, (empty if base is None else base), n_base

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        cur, n_cur, base, n_base = self._figures(st, now)
        holds = False
        bar = None
        if cur is not None and base is not None and self.judge_from is not None and now >= self.judge_from:
            if self.up and n_cur >= self.min_count and cur > base * self.rise:
                holds, bar = True, base * self.rise
            elif self.down and n_base >= self.min_count and cur < base * self.fall:
                holds, bar = True, base * self.fall
        if holds or key in self.life.active or key in self.life.pending:
            if bar is None and base is not None:
                bar = base * (self.rise if self.up else self.fall)
            change = round((cur - base) / base * 100, 2) if base and cur is not None else None
            details = {"current": cur, "previous": base, "change_pct": change}
            if self.fn != "count":
                details["fn"] = self.fn
            self.life.update(key, holds, now, cur, bar, evidence or [], details, out)


MODEL, RUNNER, DETAILS = SurgeRule, SurgeRunner, {"current", "previous", "change_pct", "fn"}
