"""ratio: (events matching `numerator`) / (events matching `where`) in
`window` satisfies `op value`, with at least `min_count` in the denominator."""

from __future__ import annotations

from typing import Any, Hashable, Literal

from pydantic import Field

from ..lifecycle import Output
from ..rules.conditions import compile_all
from ..rules.model import CompareOp, Condition, DurationText, RuleBase
from ..windows import Ratio, WinState
from .base import NUMERIC_OPS, WindowedRunner


class RatioRule(RuleBase):
    type: Literal["ratio"]
    window: DurationText
    numerator: list[Condition] = Field(min_length=1)
    op: CompareOp
    value: float
    min_count: int = Field(default=1, ge=1)


class RatioRunner(WindowedRunner):
    RESOLVED = (
        "{rule_id} resolved{where}: {numerator} of {denominator} in {window} ({value}), no longer {op} {threshold}"
    )
    hit = bool

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.agg = Ratio(self.n)
        self.num = compile_all(rule.numerator, rule.source, self.exprs)
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.min_count = rule.min_count

    def put_value(self, ev: Any) -> bool:
        return self.num is not None and bool(self.num(ev))

    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        num, den = (st.tot, st.tot2) if st is not None else (0, 0)
        ratio = num / den if den else 0.0
        holds = den >= self.min_count and self.op(ratio, self.value)
        if holds or key in self.life.active or key in self.life.pending:
            self.life.update(
                key,
                holds,
                now,
                round(ratio, 6),
                self.value,
                evidence or [],
                {"numerator": num, "denominator": den},
                out,
            )


MODEL, RUNNER, DETAILS = RatioRule, RatioRunner, {"numerator", "denominator"}
