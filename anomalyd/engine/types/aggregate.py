"""aggregate: a function (sum, avg, min, max, distinct) of the matching
events' values in the sliding `window` satisfies `op value`, with at least
`min_count` events in the window."""

from __future__ import annotations

from typing import Any, Hashable, Literal

from pydantic import Field

from ..lifecycle import Output
from ..rules.model import CompareOp, DurationText, ValueRule
from ..windows import AGGREGATORS, WinState
from .base import NUMERIC_OPS, WindowedRunner, aggregated


class AggregateRule(ValueRule):
    type: Literal["aggregate"]
    fn: Literal["sum", "avg", "min", "max", "distinct"] = Field(description="distinct: the number of distinct values")
    window: DurationText
    op: CompareOp
    value: float
    min_count: int = Field(default=1, ge=1, description="Events needed in the window for a verdict")


class AggregateRunner(WindowedRunner):
    RESOLVED = "{rule_id} resolved{where}: {fn} {aggregate} over {count} events in {window}, no longer {op} {threshold}"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.fn = rule.fn
        self.agg = AGGREGATORS[rule.fn](self.n)
        self.get = self.value_of(rule)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.min_count = rule.min_count

    def put_value(self, ev: Any) -> Any:
        return aggregated(self.fn, self.get(ev))

    def capped(self) -> int:
        return self.agg.capped

    def dump_state(self) -> Any:
        return {"capped": self.agg.capped}

    def load_state(self, data: Any) -> None:
        self.agg.capped = data.get("capped", 0) if data else 0

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        if st is None:
            n, fig = 0, None
        else:
            n, fig = self.agg.count(st.tot), self.agg.figure(st.tot)
        holds = n >= self.min_count and fig is not None and self.op(fig, self.value)
        if holds or key in self.life.active or key in self.life.pending:
            self.life.update(
                key, holds, now, fig, self.value, evidence or [], {"fn": self.fn, "aggregate": fig, "count": n}, out
            )


MODEL, RUNNER, DETAILS = AggregateRule, AggregateRunner, {"fn", "aggregate", "count"}
