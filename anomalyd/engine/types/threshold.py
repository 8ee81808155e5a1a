"""threshold: an event's `field op value` (or `expr op value`) holds. Keeps
no state but the alert itself; the group's next event decides whether it
resolves."""

from __future__ import annotations

from typing import Any, Literal

from ..lifecycle import Output
from ..rules.conditions import compare
from ..rules.model import CompareOp, ValueRule
from .base import _SKIP, NO_VALUE, Runner


class ThresholdRule(ValueRule):
    type: Literal["threshold"]
    op: CompareOp
    value: float | int | str | bool


class ThresholdRunner(Runner):
    RESOLVED = "{rule_id} resolved{where}: value {value} no longer {op} {threshold}"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.get = self.value_of(rule)
        self.test = compare(rule.op, rule.value)
        self.value = rule.value

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        key = self.group_key(ev)
        if key is _SKIP:
            return
        v = self.get(ev)
        if v is NO_VALUE:
            return  # an expression without a value gives no verdict
        holds = self.test(v)
        if holds or key in self.life.active or key in self.life.pending:  # healthy groups cost nothing more
            self.life.update(key, holds, now, v, self.value, [ev.event_id], {"event_id": ev.event_id}, out)

    def groups(self) -> int:
        return len(self.life.active) + len(self.life.pending)


MODEL, RUNNER, DETAILS = ThresholdRule, ThresholdRunner, {"event_id"}
