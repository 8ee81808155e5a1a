"""The engine: records in, alert / command / dead-letter records out.

Used as is by `replay`, `rules test`, the benchmarks and the live worker;
the worker only adds Kafka around it.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from typing import Any, Callable, Iterable

import msgspec

from .actions import OPERATOR, decode_action, decode_action_line
from .decode import Invalid, Rejected, dead_letter, decode_line_slow, decode_value, topic_of
from .events import SOURCES
from .lifecycle import ALERTS, DEAD_LETTER, SHADOW_ALERTS, Output
from .rules.loader import RuleSet
from .rules.model import RuleCore
from .sharding import shard_of
from .state import INF, StreamClock, Wake
from .structs import LINE_DECODER, TOPIC_OF
from .timeutil import format_duration
from .types import EngineConfig, Runner, runner_for
from .types.base import _SKIP
from .types.correlate import CorrelateRule, CorrelateRunner, find_cycle, inputs_of
from .types.sequence import SequenceRule

# Refusals that depend on state: a shard holding only part of a scope says
# nothing of them (another shard may hold what the action names).
STATE_REFUSALS = ("not_open", "no_hold", "no_alert")


class Engine:
    def __init__(self, rules: RuleSet | Iterable[RuleCore], config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self.clock = StreamClock()
        self.started = False
        self.runners: dict[str, Runner] = {}
        # Event handlers per source: (field getter, {value: handlers}, the others), see _dispatch.
        self.by_source: dict[str, tuple[Callable | None, dict, list[Callable]]] = {s: (None, {}, []) for s in SOURCES}
        self.routers: dict[str, list[Runner]] = {s: [] for s in SOURCES}  # the runners reading each source
        # Rules over rules: input rule id -> the correlate runners reading its alerts.
        self.consumers: dict[str, list[Any]] = {}
        self.wake = Wake()  # earliest due timer of any rule
        self.next_tick: float = -1  # idle-eviction sweeps, once a minute of event time
        # Figures for metrics and the replay summary.
        self.consumed: Counter[str] = Counter()
        self.invalid: Counter[str] = Counter()
        self.late = 0
        self.disorder = 0  # evaluated although older than the stream's time (within lateness)
        self.future = 0
        self.actions: Counter[str] = Counter()  # operator actions applied, by action
        self.wall: Callable[[], float] = time.time  # the future-skew guard's clock (tests set it)
        self.future_limit = -1  # wall clock + max_future_skew (ms), refreshed when an event passes it
        self.ruleset_version = ""
        self.shard: tuple[int, int] | None = None  # (index, count) when only one shard's groups are ours
        self.replace_rules(rules)

    # -- rules ----------------------------------------------------------------
    def replace_rules(self, rules: RuleSet | Iterable[RuleCore]) -> dict[str, list[str]]:
        """Swap in a new rule set. A rule whose id and definition are unchanged
        keeps its runner, so its windows and firing alerts carry over."""
        if isinstance(rules, RuleSet):
            self.ruleset_version = rules.version
            new_rules = rules.enabled()
        else:
            new_rules = [r for r in rules if r.enabled]
            self.ruleset_version = ""
        cycle = find_cycle(new_rules)
        if cycle:
            raise ValueError(f"correlate rules read each other in a cycle: {' -> '.join(cycle)}")
        old = self.runners
        runners: dict[str, Runner] = {}
        report: dict[str, list[str]] = {"kept": [], "added": [], "changed": [], "removed": []}
        for rule in new_rules:
            prev = old.get(rule.id)
            if prev is not None and prev.version == rule.version:
                runners[rule.id] = prev
                report["kept"].append(rule.id)
            else:
                r = runner_for(rule, self.config, self.wake)
                if self.started:
                    r.on_start(self.clock.now, [])
                runners[rule.id] = r
                report["changed" if prev is not None else "added"].append(rule.id)
        report["removed"] = [rid for rid in old if rid not in runners]
        self.runners = runners
        self._wire(new_rules, set(report["changed"]) | set(report["removed"]))
        if self.shard is not None:
            self.set_shard(*self.shard)
        self.recompute_due()
        return report

    def _wire(self, rules: list[RuleCore], gone: set[str]) -> None:
        """Who reads what: event handlers per source, correlate rules per
        input rule, and the shard pins of rules that read across groups."""
        handlers: dict[str, list[tuple[Callable, Any]]] = {s: [] for s in SOURCES}
        routers: dict[str, list[Runner]] = {s: [] for s in SOURCES}
        for r in self.runners.values():
            for src, fn in r.handlers().items():
                handlers[src].append((fn, r.index(src)))
                routers[src].append(r)
        self.by_source = {src: _dispatch(hs) for src, hs in handlers.items()}
        self.by_source[OPERATOR] = (None, {}, [self._on_action])
        self.routers = routers
        self.consumers = {}
        links: dict[str, set[str]] = {}  # correlate rule <-> inputs, both ways
        for rule in rules:
            if isinstance(rule, CorrelateRule):
                c = self.runners[rule.id]
                assert isinstance(c, CorrelateRunner)
                c.forget_inputs(gone)
                for rid in inputs_of(rule, rules):
                    self.consumers.setdefault(rid, []).append(c)
                    links.setdefault(rule.id, set()).add(rid)
                    links.setdefault(rid, set()).add(rule.id)
        # Scale-out: a sequence's key and group, and a correlate rule's
        # inputs, live on different shards. Such a rule is pinned to one shard
        # with every rule it is linked to (notes/derived-records.md).
        pins: dict[str, str] = {}
        for rule in rules:
            if rule.id in pins or not (rule.id in links or isinstance(rule, SequenceRule)):
                continue
            part, todo = set(), [rule.id]
            while todo:
                rid = todo.pop()
                if rid not in part:
                    part.add(rid)
                    todo.extend(links.get(rid, ()))
            pins.update(dict.fromkeys(part, min(part)))
        for rid, r in self.runners.items():
            r.pin = pins.get(rid)

    def recompute_due(self) -> None:
        self.wake.t = min((r.next_due for r in self.runners.values()), default=INF)

    # -- input ----------------------------------------------------------------
    def process_line(self, line: str | bytes, lineno: int | None = None) -> list[Output]:
        """One replay line (`{"topic", "value"}` or a kcat -J envelope)."""
        # decode_line's fast path, inlined: one call fewer per event. When it
        # refuses the line, only the slow path runs (no second validation).
        try:
            env = LINE_DECODER.decode(line)
        except Invalid:
            pass
        else:
            return self._line_event(TOPIC_OF[type(env)], env.value, line, lineno)
        try:
            topic, ev = decode_line_slow(line)
        except Rejected as exc:
            if exc.code != "unknown_topic":
                return [self._dead(line, exc, topic_of(line), line=lineno)]
            try:  # an operator action (not an event type: its own decoder)
                act = decode_action_line(line)
            except Rejected as bad:
                return [self._dead(line, bad, OPERATOR, line=lineno)]
            if act is None:
                return [self._dead(line, exc, topic_of(line), line=lineno)]
            return self._line_event(OPERATOR, act, line, lineno)
        return self._line_event(topic, ev, line, lineno)

    def _line_event(self, topic: str, ev: Any, line: str | bytes, lineno: int | None) -> list[Output]:
        # Refused here rather than in process_event, so that the dead letter
        # names the line and keeps its text, like every other refusal.
        if ev.ts > self.future_limit and self.too_far_ahead(ev.ts):
            return [self.refuse_future(topic, ev, line, topic, line=lineno)]
        return self.process_event(topic, ev)

    def process_record(
        self,
        topic: str,
        value: bytes | str,
        partition: int | None = None,
        offset: int | None = None,
        key: Any = None,
        source: str | None = None,
    ) -> list[Output]:
        """One Kafka record, evaluated at once. `source` maps a renamed topic to
        its event type. (The worker decodes with decode_record and orders
        events across partitions before process_event.)"""
        ev, dead = self.decode_record(source or topic, value, topic, partition, offset, key)
        return [dead] if dead is not None else self.process_event(source or topic, ev)

    def decode_record(
        self,
        source: str,
        value: bytes | str,
        topic: str,
        partition: int | None = None,
        offset: int | None = None,
        key: Any = None,
    ) -> tuple[Any, Output | None]:
        """Validate a record without evaluating it: (event, None) or (None, dead letter)."""
        try:
            if source == OPERATOR:
                return decode_action(value), None
            return decode_value(source, value), None
        except Rejected as exc:
            return None, self._dead(value, exc, topic, partition=partition, offset=offset, key=key)

    def _dead(self, original: Any, exc: Rejected, topic: str | None, **where: Any) -> Output:
        self.invalid[exc.code] += 1
        part = where.get("partition")
        where["partition"] = part if isinstance(part, int) or part is None else None
        rec = dead_letter(original, exc, topic, **where)
        return (DEAD_LETTER, topic or "unknown", rec.model_dump(mode="json"))

    def process_event(self, source: str, ev: Any) -> list[Output]:
        """One validated event of the time-ordered stream."""
        out: list[Output] = []
        ts = ev.ts
        clock = self.clock
        now = clock.now
        if ts >= now:  # in order: the common case
            if ts > self.future_limit and self.too_far_ahead(ts):
                text = ev.model_dump_json() if source == OPERATOR else msgspec.json.encode(ev)
                return [self.refuse_future(source, ev, text, source)]
        elif now - ts > self.config.allowed_lateness_ms:
            self.late += 1  # too late: windows have moved on (documented)
            self.consumed[source] += 1
            if source == OPERATOR:  # an operator must hear that it did nothing
                late = Rejected("late_action", "ts is older than the stream's time by more than allowed_lateness")
                out.append(self._dead(ev.model_dump_json(), late, OPERATOR))
            return out
        else:
            self.disorder += 1  # evaluated, but live output may differ from a time-ordered replay
        self.consumed[source] += 1
        if ts > now:
            clock.now = now = ts
        if not self.started or now >= self.wake.t or now >= self.next_tick:
            self._step(now, out)
        mark = len(out)  # what _step emitted is delivered already
        get, table, handlers = self.by_source[source]
        if get is not None:
            handlers = table.get(get(ev), handlers)
        for handle in handlers:
            handle(ev, now, out)
        if self.consumers and len(out) > mark:
            self._deliver(out, mark)
        return out

    def _on_action(self, act: Any, now: int, out: list[Output]) -> None:
        """An operator action, in event-time order with the events (engine/actions.py)."""
        r = self.runners.get(act.rule_id)
        whole: bool | None = True  # this engine holds every group the scope may cover
        if r is None:
            refused: tuple[str, str] | None = ("unknown_rule", f"no enabled rule {act.rule_id!r}")
        else:
            if r.owns is not None:  # scale-out: every shard is sent the action
                whole = self.owns_scope(r, act.scope)
                if whole is False:
                    return  # another shard's scope
            refused = r.life.operate(act, now, out)
        if refused is not None and (whole or refused[0] not in STATE_REFUSALS):
            out.append(self._dead(act.model_dump_json(exclude_none=True), Rejected(*refused), OPERATOR))
        elif refused is None:
            self.actions[act.action] += 1

    def owns_scope(self, r: Runner, scope: dict) -> bool | None:
        """Scale-out: does this shard hold the scope's groups? A scope that
        names the whole group key is one shard's (True or False); a coarser
        one may span shards (None): each shard acts on its own part of it."""
        assert r.owns is not None
        if r.pin is not None:
            return r.owns("")  # the rule is evaluated whole on one shard
        key = _scope_key(r, scope)
        return None if key is _SKIP else r.owns(key)

    def too_far_ahead(self, ts: int) -> bool:
        """Is `ts` more than `max_future_skew` ahead of the wall clock?

        The wall clock, not the stream's time: no event can truly come from
        the future, in live traffic or in a historical file, whereas a stream
        time set by a first event from a clock stuck in the past (ts 0) would
        make every real event after it look like the future (found by
        bench/bench_fuzz.py). Nor can accepted events step the limit forward
        one skew at a time. The worker asks before buffering, so such an
        event neither waits for the watermark nor moves its partition."""
        if ts <= self.future_limit:
            return False
        self.future_limit = int(self.wall() * 1000) + self.config.max_future_skew_ms
        return ts > self.future_limit

    def refuse_future(self, source: str, ev: Any, original: Any, topic: str | None, **where: Any) -> Output:
        """The dead letter of an event too far ahead (see too_far_ahead)."""
        self.future += 1
        skew = self.config.max_future_skew_ms
        exc = Rejected("future_ts", f"ts is more than {format_duration(skew)} ahead of the wall clock")
        return self._dead(original, exc, topic, **where)

    def advance_to(self, ts: int) -> list[Output]:
        """Move the stream's time to `ts` without an event of this engine's
        own: a shard's clock follows the whole stream's watermark, so its
        deadlines fire even while its own groups are quiet."""
        out: list[Output] = []
        if ts > self.clock.now:
            self.clock.now = ts
            self._step(ts, out)
        return out

    def _deliver(self, out: list[Output], start: int) -> None:
        """Alert changes of input rules, from out[start:] on, to the correlate
        rules reading them, in the order they happened; what those emit is
        delivered in turn (rules over rules over rules)."""
        consumers = self.consumers
        i = start
        while i < len(out):
            topic, _, rec = out[i]
            i += 1
            if topic in (ALERTS, SHADOW_ALERTS):
                for c in consumers.get(rec["rule_id"], ()):
                    c.on_alert(rec, out)

    def _step(self, now: int, out: list[Output]) -> None:
        """What the stream's time reaching `now` sets off: the start of the
        stream, due timers, the once-a-minute idle-eviction sweep."""
        if not self.started:
            self.started = True
            mark = len(out)
            for r in self.runners.values():
                r.on_start(now, out)
            if self.consumers:
                self._deliver(out, mark)
            self.recompute_due()
        if now >= self.wake.t:
            self._advance(now, out)
        if now >= self.next_tick:
            for r in self.runners.values():
                r.store.tick(now)
            self.next_tick = now + 60_000

    # -- sharding (scale-out) -------------------------------------------------------
    def set_shard(self, index: int, count: int) -> None:
        """Evaluate only the groups whose key hashes to shard `index` of `count`."""
        self.shard = (index, count)
        owns = (lambda key: shard_of(key, count) == index) if count > 1 else None
        for r in self.runners.values():
            if r.pin is not None and count > 1:
                mine = shard_of(r.pin, count) == index
                r.owns = lambda key, mine=mine: mine
            else:
                r.owns = owns

    def route(self, source: str, ev: Any, count: int) -> set[int]:
        """The shards that own a group this event belongs to, under any rule."""
        if source == OPERATOR:
            return self.route_action(ev, count)
        shards: set[int] = set()
        for r in self.routers[source]:
            key = r.route_key(source, ev)
            if key is not _SKIP:
                shards.add(shard_of(key if r.pin is None else r.pin, count))
        return shards

    def route_action(self, act: Any, count: int) -> set[int]:
        """The shards an operator action goes to: the one holding its scope
        (a scope naming the whole group key, or a rule pinned to one shard),
        else every shard (each acts on its part). An unknown rule goes to
        shard 0 alone, which dead-letters it once."""
        r = self.runners.get(act.rule_id)
        if r is None:
            return {0}
        if r.pin is not None:
            return {shard_of(r.pin, count)}
        key = _scope_key(r, act.scope)
        return set(range(count)) if key is _SKIP else {shard_of(key, count)}

    def _advance(self, now: int, out: list[Output]) -> None:
        """Fire every scheduled moment up to `now`, across rules in time order."""
        runners = [r for r in self.runners.values() if r.next_due <= now]
        while runners:
            r = min(runners, key=lambda x: x.next_due)
            # Run the earliest rule up to the next other rule's moment (or now).
            others = min((x.next_due for x in runners if x is not r), default=INF)
            mark = len(out)
            r.advance(int(min(now, others)), out)
            if self.consumers and len(out) > mark:
                self._deliver(out, mark)  # may set timers of the correlate rules
                runners = [x for x in self.runners.values() if x.next_due <= now]
            else:
                runners = [x for x in runners if x.next_due <= now]
        self.recompute_due()

    # -- figures ----------------------------------------------------------------
    def groups(self) -> dict[str, int]:
        return {rid: r.groups() for rid, r in self.runners.items()}

    def evictions(self) -> dict[str, int]:
        return {rid: r.evicted() for rid, r in self.runners.items()}

    def summary(self) -> dict[str, Any]:
        alerts: Counter[str] = Counter()
        commands: Counter[str] = Counter()
        for r in self.runners.values():
            for (_, status), n in r.life.counts.items():
                alerts[status] += n
            for action, n in r.life.commands.items():
                commands[action] += n
        return {
            "events": sum(self.consumed.values()),
            "by_topic": dict(self.consumed),
            "invalid": dict(self.invalid),
            "late": self.late,
            "out_of_order": self.disorder,
            "alerts": dict(alerts),
            "commands": dict(commands),
            "evictions": sum(self.evictions().values()),
            "alerts_evicted": sum(r.life.evicted for r in self.runners.values()),
        }


def _scope_key(r: Runner, scope: dict) -> Any:
    """The group key a scope names when it names every group_by field (_SKIP otherwise)."""
    fields = r.rule.group_by
    if not fields or set(scope) != set(fields):
        return _SKIP
    return scope[fields[0]] if len(fields) == 1 else tuple(scope[f] for f in fields)


def _dispatch(handlers: list[tuple[Callable, Any]]) -> tuple[Callable | None, dict, list[Callable]]:
    """Handlers of one source, indexed by the string field most of them
    filter on first (`status`): per value of it, the handlers to call, in
    rule order; for any other value, those that do not filter on it. A rule
    that cannot match an event costs nothing for it."""
    fields = Counter(ix[0] for _, ix in handlers if ix is not None)
    if not fields:
        return None, {}, [fn for fn, _ in handlers]
    field = fields.most_common(1)[0][0]
    values = set().union(*(ix[1] for _, ix in handlers if ix is not None and ix[0] == field))
    table = {v: [fn for fn, ix in handlers if ix is None or ix[0] != field or v in ix[1]] for v in values}
    return operator.attrgetter(field), table, [fn for fn, ix in handlers if ix is None or ix[0] != field]
