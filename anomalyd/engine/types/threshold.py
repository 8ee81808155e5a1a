"""threshold: an event's `field op value` holds. Keeps no state but the
alert itself; the group's next event decides whether it resolves."""

from __future__ import annotations

from typing import Any

from ..lifecycle import Output
from ..rules.conditions import compare, getter
from .base import _SKIP, Runner


class ThresholdRunner(Runner):
    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.get = getter(rule.field)
        self.test = compare(rule.op, rule.value)
        self.value = rule.value

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        key = self.group_key(ev)
        if key is _SKIP:
            return
        v = self.get(ev)
        holds = self.test(v)
        if holds or key in self.life.active:  # healthy groups cost nothing more
            self.life.update(key, holds, now, v, self.value, [ev.event_id], {"event_id": ev.event_id}, out)

    def groups(self) -> int:
        return len(self.life.active)
