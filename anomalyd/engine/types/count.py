"""count: the number of matching events in `window` satisfies `op value`."""

from __future__ import annotations

from typing import Any, Hashable, Literal

from pydantic import Field

from ..lifecycle import Output
from ..rules.model import CompareOp, DurationText, RuleBase
from ..windows import Count, WinState
from .base import NUMERIC_OPS, WindowedRunner


class CountRule(RuleBase):
    type: Literal["count"]
    window: DurationText
    op: CompareOp
    value: int = Field(ge=0)


class CountRunner(WindowedRunner):
    RESOLVED = "{rule_id} resolved{where}: {count} in {window}, no longer {op} {threshold}"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.agg = Count(self.n)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        c = st.tot if st is not None else 0
        holds = self.op(c, self.value)
        if holds or key in self.life.active or key in self.life.pending:
            self.life.update(key, holds, now, c, self.value, evidence or [], {"count": c}, out)


MODEL, RUNNER, DETAILS = CountRule, CountRunner, {"count"}
