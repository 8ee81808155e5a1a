"""absence: no matching event for `window` of event time. The deadline of
each group is a timer, so silence is noticed while other events move the
stream's time, never by a scan of all groups."""

from __future__ import annotations

from typing import Any, Hashable, Literal

from ..lifecycle import Output
from ..rules.model import DurationText, RuleBase
from ..timeutil import format_duration, format_ts
from .base import _SKIP, Runner


class AbsenceRule(RuleBase):
    type: Literal["absence"]
    window: DurationText


class AbsenceRunner(Runner):
    RESOLVED = "{rule_id} resolved{where}: events again (silent since {last_seen})"

    def __init__(self, rule, config, wake=None):
        super().__init__(rule, config, wake)
        self.window = rule.ms("window")
        self.window_text = format_duration(self.window)

    def on_start(self, now: int, out: list[Output]) -> None:
        if not self.rule.group_by and self.store.get("") is None:
            self.store.put("", [now, None, now + self.window])
            self.timers.add(now + self.window, "")

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        key = self.group_key(ev)
        if key is _SKIP:
            return
        st = self.store.get(key)  # [last seen ts, its event id, pending deadline]
        if st is None:
            st = [ev.ts, ev.event_id, ev.ts + self.window]
            self.store.put(key, st)
            self.timers.add(st[2], key)
        elif ev.ts >= st[0]:
            st[0], st[1] = ev.ts, ev.event_id
            if st[2] is None:
                st[2] = deadline = ev.ts + self.window
                self.timers.add(deadline, key)
            # else: the pending timer finds the newer ts and moves itself on
        if key in self.life.active or key in self.life.pending:
            self.life.update(key, False, now, 0, self.window // 1000, [ev.event_id], None, out)

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        st = self.store.get(key)
        if st is None:
            return
        deadline = st[0] + self.window
        if deadline > t:
            st[2] = deadline
            self.timers.add(deadline, key)
            return
        st[2] = None
        if key not in self.life.active and key not in self.life.pending:
            silent = (t - st[0]) // 1000
            self.life.update(
                key,
                True,
                t,
                silent,
                self.window // 1000,
                [st[1]] if st[1] else [],
                {"silent_for": format_duration(t - st[0]), "last_seen": format_ts(st[0])},
                out,
            )


MODEL, RUNNER, DETAILS = AbsenceRule, AbsenceRunner, {"silent_for", "last_seen"}
