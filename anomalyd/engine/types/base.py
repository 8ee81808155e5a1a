"""What every rule type shares: filter, grouping, state store, timers, lifecycle."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from ..events import field_kinds
from ..lifecycle import Lifecycle, Output
from ..rules.conditions import compile_all, getter, value_getter
from ..rules.expr import NO_VALUE
from ..rules.model import RuleCore
from ..state import INF, GroupStore, Timers, Wake
from ..windows import EVIDENCE, Aggregator, WinState

NUMERIC_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def aggregated(fn: str, v: Any) -> Any:
    """The value an aggregate function takes from an event: a number, or
    for `distinct` any scalar; NO_VALUE (not counted) otherwise."""
    if fn == "distinct":
        return v if type(v) in (str, int, float) else NO_VALUE
    return v if type(v) is int or type(v) is float else NO_VALUE


@dataclass
class EngineConfig:
    allowed_lateness_ms: int = 60_000
    idle_timeout_ms: int = 3_600_000
    max_groups_per_rule: int = 500_000
    # Events further ahead of the wall clock than this are refused, so one
    # bad clock cannot fast-forward every window (see docs on time abuse).
    max_future_skew_ms: int = 24 * 3_600_000


_SKIP = object()  # an event lacking a group_by field is not evaluated


def make_key(group_by: list[str]) -> Callable[[Any], Any]:
    """Group key of an event: '' (global), the value, or a tuple of values."""
    if not group_by:
        return lambda ev: ""
    gets = [getter(f) for f in group_by]
    if len(gets) == 1:
        g = gets[0]

        def one(ev: Any) -> Any:
            v = g(ev)
            return _SKIP if v is None else v

        return one

    def many(ev: Any) -> Any:
        vals = tuple(g(ev) for g in gets)
        return _SKIP if None in vals else vals

    return many


def make_group(group_by: list[str]) -> Callable[[Hashable], dict]:
    if not group_by:
        return lambda key: {}
    if len(group_by) == 1:
        f = group_by[0]
        return lambda key: {f: key}
    return lambda key: dict(zip(group_by, key, strict=True))  # type: ignore[call-overload]  # a tuple key


def index_of(where: Any, source: str) -> tuple[str, frozenset] | None:
    """The (field, values) a condition list's first condition demands of a
    string field (`==` a string, `in` strings), if it is such a condition."""
    if not where:
        return None
    c = where[0]
    if c.field is None or c.field.startswith("attrs.") or field_kinds(source).get(c.field, ("",))[0] != "string":
        return None
    if c.op == "==" and isinstance(c.value, str):
        return c.field, frozenset([c.value])
    if c.op == "in" and isinstance(c.value, list) and all(isinstance(v, str) for v in c.value):
        return c.field, frozenset(c.value)
    return None


class Runner:
    """Base of the rule types. Subclasses implement `on_event`, and windowed
    ones `reevaluate(key, t, out)` for the moments their timers schedule."""

    windowed = False
    RESOLVED: str | None = None  # the type's default resolved_message

    def __init__(self, rule: RuleCore, config: EngineConfig, wake: Wake | None = None):
        wake = wake or Wake()
        self.rule = rule
        self.id = rule.id
        self.version = rule.version
        self.exprs: list = []  # compiled expressions, for their run-time failure counts
        self.where = compile_all(getattr(rule, "where", ()), rule.source, self.exprs)
        self.key_of = make_key(rule.group_by)
        self.life = Lifecycle(rule, make_group(rule.group_by), wake, config.max_groups_per_rule, self.RESOLVED)
        window = rule.ms("window") if getattr(rule, "window", None) else 0
        # Idle eviction must never empty a window that is still counting.
        # An offset baseline's history must outlive the offset too.
        offset = rule.ms("offset") if getattr(rule, "offset", None) else 0
        idle = max(config.idle_timeout_ms, 2 * window + offset + config.allowed_lateness_ms)
        self.store = GroupStore(idle, config.max_groups_per_rule)
        self.timers = Timers(wake)
        self.skipped_no_group = 0
        self.owns: Callable[[Any], bool] | None = None  # set by Engine.set_shard
        self.pin: str | None = None  # scale-out: the shard key of a rule evaluated whole on one shard

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        raise NotImplementedError

    def handlers(self) -> dict[str, Callable[[Any, int, list[Output]], Any]]:
        """What the engine calls per event, by source."""
        return {self.rule.source: self.on_event}

    def index(self, source: str) -> tuple[str, frozenset] | None:
        """(field, values): this rule reads only events of `source` whose
        string field has one of these values (its first condition), so the
        engine need not call it for others. None: no such promise."""
        return index_of(getattr(self.rule, "where", ()), source)

    def route_key(self, source: str, ev: Any) -> Any:
        """The group an event of `source` goes to in scale-out mode (_SKIP: none)."""
        if self.where is not None and not self.where(ev):
            return _SKIP
        return self.key_of(ev)

    def group_key(self, ev: Any) -> Any:
        """The group of an event this rule looks at, or _SKIP when the event
        fails `where` or lacks a `group_by` field."""
        if self.where is not None and not self.where(ev):
            return _SKIP
        key = self.key_of(ev)
        if key is _SKIP:
            self.skipped_no_group += 1
        elif self.owns is not None and not self.owns(key):
            return _SKIP  # another shard's group (scale-out)
        return key

    def value_of(self, rule: Any) -> Callable[[Any], Any]:
        """The value a rule reads per event: its field, or its expr (NO_VALUE
        when the expression has no value for the event)."""
        return value_getter(rule, self.rule.source, self.exprs)

    def expr_errors(self) -> int:
        return sum(e.errors for e in self.exprs)

    def dump_state(self) -> Any:
        """The type's own state beyond groups, timers and lifecycle (plain values)."""
        return None

    def load_state(self, data: Any) -> None:
        """`data` is what dump_state gave; None from a snapshot written before
        the type had state of its own."""

    def on_start(self, now: int, out: list[Output]) -> None:
        """The stream's first event time (absence rules start their clock)."""

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        pass

    @property
    def next_due(self) -> float:
        a, b = self.timers.next, self.life.timers.next
        return a if a < b else b

    def advance(self, now: int, out: list[Output]) -> None:
        """Run every scheduled moment up to `now`, in event-time order."""
        timers, life = self.timers, self.life
        while True:
            t1, t2 = timers.next, life.timers.next
            t = t1 if t1 < t2 else t2
            if t > now:
                break
            if t1 <= t2:
                t, keys = timers.pop()
                for key in sorted(keys, key=repr) if len(keys) > 1 else keys:
                    self.reevaluate(key, t, out)
            else:
                life.advance(int(t), out)

    def groups(self) -> int:
        return len(self.store)

    def evicted(self) -> int:
        return self.store.evicted


class WindowedRunner(Runner):
    """Bucketed sliding windows: buckets of at most a tenth of the window."""

    windowed = True
    spans = 1  # windows of history kept (surge keeps the previous one too)

    def __init__(self, rule: RuleCore, config: EngineConfig, wake: Wake | None = None):
        super().__init__(rule, config, wake)
        self.window = rule.ms("window")
        self.b = max(1, self.window // 10)
        self.n = -(-self.window // self.b)  # buckets per window (ceil)
        # put_value not overridden: the event itself is counted (no call per event).
        self.counts_events = type(self).put_value is WindowedRunner.put_value

    def schedule(self, key: Hashable, k: int, now: int) -> None:
        """An event in bucket k changes the verdict when it enters (if it is
        ahead of the stream's time) and when it ages out of each span."""
        b, n = self.b, self.n
        if k * b > now:
            self.timers.add(k * b, key)
        for span in range(1, self.spans + 1):
            self.timers.add((k + span * n) * b, key)

    # A windowed type names its Aggregator (self.agg), the value an event
    # puts in (`put_value`, by default the event itself: counted), and how
    # its totals are judged.
    agg: Aggregator
    hit: Callable[[Any], bool] | None = None  # evidence only of values it accepts (ratio: numerator hits)
    history = False  # remember() each event (offset baselines)

    def put_value(self, ev: Any) -> Any:
        return ev

    def judge(self, key: Hashable, st: "WinState | None", now: int, evidence: Any, out: list[Output]) -> None:
        raise NotImplementedError

    def on_event(self, ev: Any, now: int, out: list[Output]) -> None:
        key = self.group_key(ev)
        if key is _SKIP:
            return
        if self.counts_events:
            v = ev
        else:
            v = self.put_value(ev)
            if v is NO_VALUE:
                return  # an expression with no value for this event: not counted
        self.tally(key, ev, v, now, out)

    def tally(self, key: Hashable, ev: Any, v: Any, now: int, out: list[Output]) -> None:
        """Put value `v` of `ev` (anything with `ts` and `event_id`) into its
        group's window, schedule the group's moments and judge it."""
        st = self.store.get(key)
        if st is None:
            st = self.new_state()
            self.store.put(key, st)
        b = self.b
        k = ev.ts // b
        cur = now // b
        agg = self.agg
        if st.at == cur:
            agg.add(st, v, k, cur)  # also updates the running totals
        else:
            agg.add(st, v, k, None)
            agg.totals(st, cur)
        if st.evidence is not None and (self.hit is None or self.hit(v)):
            st.evidence.append(ev.event_id)
        if self.history:
            self.remember(st, ev, v)
        if k != st.sched:  # otherwise this group's moments for bucket k are already set
            st.sched = k
            self.schedule(key, k, now)
        self.judge(key, st, now, st.evidence, out)

    def new_state(self) -> WinState:
        return WinState()

    def remember(self, st: WinState, ev: Any, v: Any) -> None:
        """Anything else an event leaves in the group's state (offset history)."""

    def reevaluate(self, key: Hashable, t: int, out: list[Output]) -> None:
        st = self.store.get(key)
        if st is not None:
            self.agg.totals(st, t // self.b)
        self.judge(key, st, t, None, out)


__all__ = [
    "aggregated",
    "EngineConfig",
    "Runner",
    "WindowedRunner",
    "WinState",
    "NUMERIC_OPS",
    "INF",
    "_SKIP",
    "EVIDENCE",
    "NO_VALUE",
]
