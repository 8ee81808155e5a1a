"""sequence: an event of one source opens an expectation that a matching
event of another (or the same) source closes within a deadline (contract
section 3c). Unpaid orders, real-time reconciliation of a payment's amount
against its order, a dispatch that never came.

Each expectation ends in one outcome at an event-time moment: `matched` or
`mismatched` when its `then` event arrives (before `first.ts + within`; the
deadline is exclusive, like a window's end), `missed` at the deadline itself
(a timer, so silence is noticed while other events move the stream's time).
Outcomes are counted per `group_by` group of the first event in a sliding
window, like `count` counts events.
"""

from __future__ import annotations

import heapq
import re
from typing import Any, Hashable, Literal

from pydantic import Field, field_validator, model_validator

from ..lifecycle import Output
from ..rules.conditions import compile_all, getter
from ..rules.expr import NO_VALUE, compile_expr
from ..rules.model import CompareOp, Condition, DurationText, RuleCore, Source, _Strict
from ..state import INF, GroupStore, Wake
from ..windows import Outcomes, WinState
from .base import _SKIP, NUMERIC_OPS, WindowedRunner, index_of

Kind = Literal["matched", "mismatched", "missed"]
MATCHED, MISMATCHED, MISSED = range(3)  # Outcomes.KINDS' order


def _missed_only() -> list[Kind]:
    return ["missed"]


class Side(_Strict):
    """One end of a sequence: which events, and the field that pairs them."""

    source: Source
    key: str = Field(description="The field whose value pairs a first event with its then event, e.g. order_id")
    where: list[Condition] = Field(default_factory=list, description="Every condition must hold")


class Match(_Strict):
    """Reconciliation: a value of the first event against one of the then event."""

    first: str = Field(
        description="A CEL expression over the first event (a field name is one), e.g. unit_price * quantity"
    )
    then: str = Field(description="A CEL expression over the then event, e.g. amount")
    tolerance: str | float | int = Field(
        default=0, description="How far apart they may be: a number, or a percentage of the first value such as '1%'"
    )

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("tolerance is a number or a percentage such as '1%'")
        if isinstance(v, str) and not re.fullmatch(r"\d+(\.\d+)?%", v):
            raise ValueError(f"tolerance {v!r}: a number, or a percentage such as '1%'")
        if not isinstance(v, str) and v < 0:
            raise ValueError("tolerance cannot be negative")
        return v


class SequenceRule(RuleCore):
    type: Literal["sequence"]
    first: Side
    then: Side
    within: DurationText = Field(description="The then event must come before first.ts + within")
    match: Match | None = None
    outcome: list[Kind] = Field(
        default_factory=_missed_only, min_length=1, description="Which outcomes are counted (default [missed])"
    )
    window: DurationText = Field(description="Outcomes are counted in a sliding window of event time")
    op: CompareOp
    value: int = Field(ge=0)

    @model_validator(mode="after")
    def _fits(self) -> "SequenceRule":
        if len(set(self.outcome)) != len(self.outcome):
            raise ValueError("outcome lists a kind twice")
        if "mismatched" in self.outcome and self.match is None:
            raise ValueError("outcome 'mismatched' needs match: {first: ..., then: ..., tolerance: ...}")
        return self

    @property
    def source(self) -> str:
        """What alerts name as their source: the first events' (the group's fields are theirs)."""
        return self.first.source

    def sources(self) -> list[str]:
        return list(dict.fromkeys([self.first.source, self.then.source]))


class Deadlines:
    """Each open expectation's deadline: a heap of (deadline, seq, key).
    A tuple per expectation rather than Timers' set per moment: a million
    open orders have a million distinct deadlines (bench/README.md)."""

    __slots__ = ("heap", "seq", "wake")

    def __init__(self, wake: Wake):
        self.heap: list[tuple[int, int, Any]] = []
        self.seq = 0  # ties at one moment expire in the order they were opened
        self.wake = wake

    def add(self, t: int, key: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, key))
        if t < self.wake.t:
            self.wake.t = t

    @property
    def next(self) -> float:
        return self.heap[0][0] if self.heap else INF

    def pop(self) -> tuple[int, Any]:
        t, _, key = heapq.heappop(self.heap)
        return t, key

    def dump(self) -> tuple:
        return (self.seq, [list(x) for x in self.heap])

    def load(self, data: tuple) -> None:
        self.seq = data[0]
        self.heap = [tuple(x) for x in data[1]]
        if self.heap and self.heap[0][0] < self.wake.t:
            self.wake.t = self.heap[0][0]


class _Moment:
    """An outcome as the window sees it: a time and the first event's id (evidence)."""

    __slots__ = ("ts", "event_id")

    def __init__(self, ts: int, event_id: str):
        self.ts, self.event_id = ts, event_id


class SequenceRunner(WindowedRunner):
    RESOLVED = "{rule_id} resolved{where}: {count} in {window}, no longer {op} {threshold}"
    rule: SequenceRule

    def __init__(self, rule: SequenceRule, config, wake=None):
        super().__init__(rule, config, wake)
        self.agg = Outcomes(self.n)
        self.counted = [Outcomes.KINDS.index(k) for k in rule.outcome]
        self.hit = frozenset(self.counted).__contains__  # evidence: the first events of counted outcomes
        self.op = NUMERIC_OPS[rule.op]
        self.value = rule.value
        self.within = rule.ms("within")
        self.first_where = compile_all(rule.first.where, rule.first.source, self.exprs)
        self.then_where = compile_all(rule.then.where, rule.then.source, self.exprs)
        self.first_key, self.then_key = getter(rule.first.key), getter(rule.then.key)
        m = rule.match
        self.m_first = self.m_then = None
        if m is not None:
            self.m_first, self.m_then = compile_expr(rule.first.source, m.first), compile_expr(rule.then.source, m.then)
            self.exprs += [self.m_first, self.m_then]
            tol = m.tolerance
            self.pct = float(tol[:-1]) / 100 if isinstance(tol, str) else None
            self.tol = float(tol) if not isinstance(tol, str) else 0.0
        # Open expectations: key value -> (first ts, first event id, group key,
        # first value). Bounded by max_groups (evictions counted); each one
        # ends at its deadline, so no idle eviction is needed.
        self.open = GroupStore(INF, config.max_groups_per_rule)  # type: ignore[arg-type]
        self.deadlines = Deadlines(self.timers.wake)
        self.outcomes = [0, 0, 0]  # every outcome so far, by kind (backtest, metrics)

    # -- routing --------------------------------------------------------------
    def handlers(self) -> dict[str, Any]:
        first, then = self.rule.first.source, self.rule.then.source
        if first == then:
            return {first: self.on_either}
        return {first: self.on_first, then: self.on_then}

    def index(self, source: str) -> tuple[str, frozenset] | None:
        first, then = (
            index_of(side.where, source) if side.source == source else None
            for side in (self.rule.first, self.rule.then)
        )
        if self.rule.first.source != self.rule.then.source:
            return first or then
        if first and then and first[0] == then[0]:  # one source, both ends: either end's values
            return first[0], first[1] | then[1]
        return None

    def route_key(self, source: str, ev: Any) -> Any:
        r = self.rule
        for side, where, key in ((r.first, self.first_where, self.first_key), (r.then, self.then_where, self.then_key)):
            if side.source == source and (where is None or where(ev)) and key(ev) is not None:
                return ""
        return _SKIP

    # -- events ---------------------------------------------------------------
    def on_either(self, ev: Any, now: int, out: list[Output]) -> None:
        """One source for both ends: an event that closes an expectation does
        not also open one."""
        if not self.on_then(ev, now, out):
            self.on_first(ev, now, out)

    def on_first(self, ev: Any, now: int, out: list[Output]) -> None:
        if self.first_where is not None and not self.first_where(ev):
            return
        kv = self.first_key(ev)
        if kv is None or self.open.get(kv) is not None:
            return  # no key, or already open: a second first event is ignored
        key = self.group_key(ev)  # (a sequence has no top-level where: first.where is tested above)
        if key is _SKIP:
            return
        fv = None
        if self.m_first is not None:
            v = self.m_first(ev)
            fv = float(v) if type(v) in (int, float) else None
        self.open.put(kv, (ev.ts, ev.event_id, key, fv))
        self.deadlines.add(ev.ts + self.within, kv)

    def on_then(self, ev: Any, now: int, out: list[Output]) -> bool:
        if self.then_where is not None and not self.then_where(ev):
            return False
        kv = self.then_key(ev)
        o = self.open.get(kv) if kv is not None else None
        if o is None or not o[0] <= ev.ts < o[0] + self.within:
            return False
        self.open.pop(kv)
        kind = MATCHED if self.m_first is None or self.matches(o[3], ev) else MISMATCHED
        self.outcomes[kind] += 1
        self.tally(o[2], _Moment(ev.ts, o[1]), kind, now, out)
        return True

    def matches(self, first: float | None, ev: Any) -> bool:
        """|then - first| within tolerance; a value that cannot be read on
        either side is a mismatch (reconciliation must not pass what it
        could not check)."""
        v = self.m_then(ev)  # type: ignore[misc]
        if first is None or type(v) not in (int, float) or v is NO_VALUE:
            return False
        tol = abs(first) * self.pct if self.pct is not None else self.tol
        return abs(v - first) <= tol + 1e-9 * max(1.0, abs(first))

    # -- time -----------------------------------------------------------------
    @property
    def next_due(self) -> float:
        a = super().next_due
        b = self.deadlines.next
        return a if a < b else b

    def advance(self, now: int, out: list[Output]) -> None:
        """Window and lifecycle moments and deadlines, in event-time order (a
        deadline first at a tie: the missed outcome counts at its moment)."""
        while True:
            td = self.deadlines.next
            if td > now:
                super().advance(now, out)
                return
            super().advance(int(td) - 1, out)
            t, kv = self.deadlines.pop()
            o = self.open.get(kv)
            if o is not None and o[0] + self.within == t:  # not closed, nor opened again since
                self.open.pop(kv)
                self.outcomes[MISSED] += 1
                self.tally(o[2], _Moment(t, o[1]), MISSED, t, out)

    # -- verdict --------------------------------------------------------------
    def judge(self, key: Hashable, st: WinState | None, now: int, evidence: Any, out: list[Output]) -> None:
        c = st.tot if st is not None else [0, 0, 0]
        n = sum(c[i] for i in self.counted)
        holds = self.op(n, self.value)
        if holds or key in self.life.active or key in self.life.pending:
            self.life.update(
                key,
                holds,
                now,
                n,
                self.value,
                evidence or [],
                {"count": n, "matched": c[0], "mismatched": c[1], "missed": c[2]},
                out,
            )

    # -- state ----------------------------------------------------------------
    def outcome_counts(self) -> dict[str, int]:
        """Every outcome so far, by kind name (backtest, metrics)."""
        return dict(zip(Outcomes.KINDS, self.outcomes, strict=True))

    def groups(self) -> int:
        return len(self.store) + len(self.open)

    def evicted(self) -> int:
        return self.store.evicted + self.open.evicted

    def dump_state(self) -> Any:
        return {
            "open": [(k, list(v)) for k, v in self.open.items()],
            "open_evicted": self.open.evicted,
            "deadlines": self.deadlines.dump(),
            "outcomes": list(self.outcomes),
        }

    def load_state(self, data: Any) -> None:
        self.open.load([(k, tuple(v)) for k, v in data["open"]])
        self.open.evicted = data["open_evicted"]
        self.deadlines.load(data["deadlines"])
        self.outcomes = list(data["outcomes"])


MODEL, RUNNER, DETAILS = SequenceRule, SequenceRunner, {"count", "matched", "mismatched", "missed"}
