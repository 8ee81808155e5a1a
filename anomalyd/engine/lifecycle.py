"""Alert lifecycle (firing -> resolved) and circuit-breaker commands.

One record per state change, never one per event. Every id is a hash of the
rule, the group and event times, so the same input always yields the same
ids and a consumer can drop duplicates after a restart.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable, Hashable

from .rules.model import RuleCore
from .state import Timers, Wake
from .timeutil import format_duration, format_ts, parse_duration

ALERTS, SHADOW_ALERTS, COMMANDS, DEAD_LETTER = "alerts", "alerts-shadow", "breaker-commands", "dead-letter"

Output = tuple[str, str, dict]  # (logical topic, key, value)


def _h(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def _num(v: Any) -> Any:
    """JSON-friendly number: integral floats as ints, NaN/inf as None."""
    if type(v) is float:
        if not math.isfinite(v):
            return None
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
        return round(v, 6)
    return v


def _show(v: Any) -> Any:
    """Numbers as people read them in a message: 100.21, 0.2315, 55."""
    if type(v) is float:
        return round(v, 2) if abs(v) >= 1 else round(v, 4)
    return v


class _Fmt(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Active:
    """A firing episode of one group."""

    __slots__ = ("started", "alert_id", "holds", "last_true", "value", "threshold", "details", "evidence", "ack")

    def __init__(self, started: int, alert_id: str):
        self.started = started
        self.alert_id = alert_id
        self.holds = True
        self.last_true = started
        self.value: Any = None
        self.threshold: Any = None
        self.details: dict = {}
        self.evidence: list[str] = []  # pending episodes: the evidence of when it became true
        self.ack: dict | None = None  # {by, reason, ts} once an operator acknowledged it


class ScopeState:
    __slots__ = ("groups", "opened", "expires", "command_id", "alert_id", "closed")

    def __init__(self, opened: int, expires: int, command_id: str, alert_id: str):
        self.groups: set = set()
        self.opened = opened
        self.expires = expires
        self.command_id = command_id
        self.alert_id = alert_id
        # An operator closed it: its firing groups do not open it again
        # (only a new episode does, or the end of a hold_closed).
        self.closed = False


class Hold:
    """An operator's hold on a breaker scope: `hold_closed` or `hold_open` until `until`."""

    __slots__ = ("kind", "until", "by", "reason", "ts", "scope")

    def __init__(self, kind: str, until: int, by: str, reason: str, ts: int, scope: dict):
        self.kind, self.until, self.by, self.reason, self.ts, self.scope = kind, until, by, reason, ts, scope

    def record(self) -> dict:
        return {"action": self.kind, "until": format_ts(self.until), "by": self.by, "reason": self.reason}

    def dump(self) -> tuple:
        return (self.kind, self.until, self.by, self.reason, self.ts, self.scope)


def _hold_timer(skey: str) -> tuple:
    """The timer key of a hold's end: no group key is a tuple holding None."""
    return (None, skey)


class Lifecycle:
    def __init__(
        self,
        rule: RuleCore,
        group_of: Callable[[Hashable], dict],
        wake: Wake | None = None,
        cap: int | None = None,
        resolved: str | None = None,
    ):
        self.rule = rule
        self.version = rule.version
        self.group_of = group_of
        self.cooldown = rule.ms("cooldown")
        self.active: dict[Hashable, Active] = {}  # firing episodes
        # `for`: episodes whose condition holds but not yet for that long
        # (Prometheus' pending state); they fire at started + for, a timer.
        self.hold_for = rule.ms("for_")
        self.pending: dict[Hashable, Active] = {}
        self.resolved_template = rule.resolved_message or resolved or RESOLVED_DEFAULT
        # Firing episodes are state too: a flood of keys that all fire (an
        # absence rule on keys seen once) would otherwise grow without bound.
        # Over the cap the oldest episode is forgotten (see _forget).
        self.cap = cap
        self.evicted = 0
        self.orphans: dict[str, int] = {}  # breaker scopes whose groups were all forgotten -> expires
        self.timers = Timers(wake)  # cooldown expiries
        self.scopes: dict[str, ScopeState] = {}
        self.holds: dict[str, Hold] = {}  # breaker scope -> the operator's hold on it
        self.topic = SHADOW_ALERTS if rule.mode == "shadow" else ALERTS
        b = rule.breaker if rule.mode == "live" else None
        self.breaker = b
        self.ttl = parse_duration(b.ttl) if b else 0
        self.counts: dict[tuple[str, str], int] = {}  # (severity, status) -> n, for metrics
        self.commands: dict[str, int] = {}
        self.last_fired = -1  # event time of the latest firing record (the operators' API)
        self.window_text = format_duration(rule.ms("window")) if getattr(rule, "window", None) else ""

    # -- the one entry point rule types call -------------------------------
    def update(
        self,
        key: Hashable,
        holds: bool,
        now: int,
        value: Any,
        threshold: Any,
        evidence: list[str],
        details: dict | None,
        out: list[Output],
    ) -> None:
        a = self.active.get(key)
        if a is None:
            if self.hold_for:
                self._pend(key, holds, now, value, threshold, evidence, details)
            elif holds:
                self._fire(key, now, value, threshold, evidence, details or {}, out)
            return
        if holds:
            a.holds = True
            a.last_true = now
            a.value, a.threshold, a.details = value, threshold, details or {}
            if self.breaker:
                self._reopen_if_lapsed(key, a, now, out)
            return
        a.holds = False
        a.value, a.threshold, a.details = value, threshold, details or a.details
        if now - a.last_true >= self.cooldown:
            self._resolve(key, a, now, evidence, out)
        else:
            self.timers.add(a.last_true + self.cooldown, key)

    def _pend(
        self,
        key: Hashable,
        holds: bool,
        now: int,
        value: Any,
        threshold: Any,
        evidence: list[str],
        details: dict | None,
    ) -> None:
        """`for`: an evaluation of a group that is not firing. Found false, a
        pending episode ends without a record; found true, it starts (or
        goes on) and its timer fires it at started + for."""
        p = self.pending.get(key)
        if not holds:
            if p is not None:
                del self.pending[key]
            return
        if p is None:
            p = self.pending[key] = Active(now, "")
            p.evidence = list(evidence)
            self.timers.add(now + self.hold_for, key)
        p.last_true = now
        p.value, p.threshold, p.details = value, threshold, details or {}

    def advance(self, now: int, out: list[Output]) -> None:
        timers = self.timers
        while timers.heap and timers.heap[0] <= now:
            t, keys = timers.pop()
            for key in sorted(keys, key=repr):  # sorted: output order is deterministic
                if type(key) is tuple and key[0] is None:
                    h = self.holds.get(key[1])
                    if h is not None and h.until == t:  # not replaced or released meanwhile
                        self._end_hold(key[1], t, h, None, f"hold ended ({h.kind} by {h.by}: {h.reason})", out)
                    continue
                a = self.active.get(key)
                if a is not None and not a.holds and t - a.last_true >= self.cooldown:
                    self._resolve(key, a, t, [], out)
                p = self.pending.get(key)
                if p is not None and t >= p.started + self.hold_for:
                    # Nothing found it false since it became true: it fires now.
                    del self.pending[key]
                    self._fire(key, t, p.value, p.threshold, p.evidence, p.details, out, started=p.started)

    # -- records ------------------------------------------------------------
    def _fingerprint(self, group: dict) -> str:
        return _h(self.rule.id + "\x00" + json.dumps(group, sort_keys=True, default=str), 8)

    def _alert(self, key: Hashable, status: str, a: Active, now: int, evidence: list[str]) -> dict:
        rule = self.rule
        group = self.group_of(key)
        fp = self._fingerprint(group)  # once per record
        value, threshold = _num(a.value), _num(a.threshold)
        details = {k: _num(v) for k, v in a.details.items()}
        if status == "firing":
            alert_id = a.alert_id = _h(f"{fp}|{a.started}|firing", 16)  # the episode's id, kept for commands
        else:
            alert_id = _h(f"{fp}|{a.started}|resolved|{now}", 16)
        fields = _Fmt(group)
        fields.update({k: _show(v) for k, v in details.items()})
        fields.update(
            value=_show(value),
            threshold=_show(threshold),
            rule_id=rule.id,
            severity=rule.severity,
            source=rule.source,
            window=self.window_text,
            group=group,
            op=getattr(rule, "op", ""),
            where=" (" + ", ".join(f"{k}={v}" for k, v in group.items()) + ")" if group else "",
        )
        if status == "resolved":
            message = self.resolved_template.format_map(fields)
        elif rule.message:
            message = rule.message.format_map(fields)
        else:
            message = f"{rule.description or rule.id}{fields['where']}: value {value}, threshold {threshold}"
        self.counts[(rule.severity, status)] = self.counts.get((rule.severity, status), 0) + 1
        rec = {
            "alert_id": alert_id,
            "fingerprint": fp,
            "rule_id": rule.id,
            "rule_version": self.version,
            "severity": rule.severity,
            "status": status,
            "source": rule.source,
            "group": group,
            "value": value,
            "threshold": threshold,
            "message": message,
            "labels": dict(rule.labels),
            "started_at": format_ts(a.started),
            "ts": format_ts(now),
            "evidence": list(evidence),
            "details": details,
            "shadow": rule.mode == "shadow",
            "runbook": rule.runbook,
            "owner": rule.owner,
        }
        if a.ack is not None:
            rec["ack"] = dict(a.ack)
        if self.holds:
            h = self.holds.get(self.scope_of(key)[0])
            if h is not None:
                rec["hold"] = h.record()
        return rec

    def _fire(
        self,
        key: Hashable,
        now: int,
        value: Any,
        threshold: Any,
        evidence: list[str],
        details: dict,
        out: list[Output],
        started: int | None = None,
    ) -> None:
        a = Active(now if started is None else started, "")
        a.value, a.threshold, a.details = value, threshold, details
        self.active[key] = a
        self.last_fired = now
        rec = self._alert(key, "firing", a, now, evidence)  # sets a.alert_id (one fingerprint per record)
        out.append((self.topic, rec["fingerprint"], rec))
        if self.breaker:
            self._open(key, a, now, rec["message"], out)
        if self.cap is not None and len(self.active) > self.cap:
            self._forget(next(iter(self.active)), now)  # dicts keep insertion order: the oldest episode

    def _forget(self, key: Hashable, now: int) -> None:
        """Drop a firing episode without a record. No `resolved` is emitted
        (its condition was never seen to stop holding, contract section 4) and
        no breaker `close`: a scope left with no firing group keeps its open
        command until `expires_at`, the safe side for a paused business, and
        stays known until then so that it is not opened twice. If the group
        fires again later, that is a new episode with a new alert_id."""
        del self.active[key]
        self.evicted += 1
        if not self.breaker:
            return
        skey, _ = self.scope_of(key)
        s = self.scopes.get(skey)
        if s is not None:
            s.groups.discard(key)
            if not s.groups:
                self.orphans[skey] = s.expires
        # Orphaned scopes go once lapsed (roughly in order: one ttl per rule).
        orphans = self.orphans
        while orphans:
            skey = next(iter(orphans))
            if orphans[skey] > now and self.cap is not None and len(orphans) <= self.cap:
                break
            del orphans[skey]
            s = self.scopes.get(skey)
            if s is not None and not s.groups:
                del self.scopes[skey]

    def _resolve(self, key: Hashable, a: Active, now: int, evidence: list[str], out: list[Output]) -> None:
        del self.active[key]
        rec = self._alert(key, "resolved", a, now, evidence)
        out.append((self.topic, rec["fingerprint"], rec))
        if self.breaker:
            self._close(key, now, rec, out)

    # -- breaker ------------------------------------------------------------
    def scope_of(self, key: Hashable) -> tuple[str, dict]:
        assert self.breaker is not None  # only rules with a breaker have scopes
        group = self.group_of(key)
        scope = {f: group.get(f) for f in self.breaker.scope}
        return ",".join(f"{k}={v}" for k, v in scope.items()), scope

    def _command(
        self,
        action: str,
        skey: str,
        scope: dict,
        s: ScopeState,
        now: int,
        reason: str,
        out: list[Output],
        by: str | None = None,
    ) -> None:
        assert self.breaker is not None
        cid = s.command_id if action == "open" else _h(f"{s.command_id}|close|{now}", 16)
        self.commands[action] = self.commands.get(action, 0) + 1
        rec = {
            "command_id": cid,
            "action": action,
            "breaker": self.breaker.action,
            "scope": scope,
            "rule_id": self.rule.id,
            "alert_id": s.alert_id,
            "reason": reason,
            "ts": format_ts(now),
            "expires_at": format_ts(s.expires),
        }
        if by is not None:
            rec["by"] = by
        out.append((COMMANDS, skey, rec))

    def _open(self, key: Hashable, a: Active, now: int, reason: str, out: list[Output], fresh: bool = True) -> None:
        """Open the group's scope unless it is open. `fresh`: a new episode,
        which opens a scope an operator closed (not one held closed)."""
        skey, scope = self.scope_of(key)
        s = self.scopes.get(skey)
        h = self.holds.get(skey) if self.holds else None
        if h is not None and h.kind == "hold_closed":
            if s is None:  # kept to know which groups still fire when the hold ends
                s = self.scopes[skey] = ScopeState(now, now, "", a.alert_id)
                s.closed = True
            s.groups.add(key)
            return
        if s is not None and s.closed and not fresh:
            s.groups.add(key)
            return
        if s is None or s.expires <= now or s.closed:  # not open, lapsed by its ttl, or closed by an operator
            groups = s.groups if s else set()
            s = ScopeState(now, now + self.ttl, _h(f"{self.rule.id}|{skey}|{now}|open", 16), a.alert_id)
            s.groups = groups
            self.scopes[skey] = s
            self._command("open", skey, scope, s, now, reason, out)
        s.groups.add(key)

    def _reopen_if_lapsed(self, key: Hashable, a: Active, now: int, out: list[Output]) -> None:
        skey, _ = self.scope_of(key)
        s = self.scopes.get(skey)
        if s is None or s.expires <= now:
            self._open(key, a, now, f"still firing after the breaker lapsed: {self.rule.id}", out, fresh=False)

    def _close(self, key: Hashable, now: int, rec: dict, out: list[Output]) -> None:
        skey, scope = self.scope_of(key)
        s = self.scopes.get(skey)
        if s is None:
            return
        s.groups.discard(key)
        if s.groups:
            return  # another group in the same scope still fires
        if self.holds and skey in self.holds:
            if self.holds[skey].kind == "hold_open":
                return  # open until the hold ends, whatever the alerts do
        del self.scopes[skey]
        if s.expires > now and not s.closed:  # a lapsed or closed breaker needs no close
            s.alert_id = rec["alert_id"]
            self._command("close", skey, scope, s, now, f"resolved: {rec['message']}", out)

    # -- operator actions (engine/actions.py) --------------------------------
    def operate(self, act: Any, now: int, out: list[Output]) -> tuple[str, str] | None:
        """Apply an operator action at event time `now`: None, or the
        (reason code, reason) it is refused with (its dead letter)."""
        if act.action == "ack":
            return self._ack(act, now)
        b = self.breaker
        if b is None:
            why = " (shadow mode)" if self.rule.breaker is not None else ""
            return "no_breaker", f"rule {self.rule.id} has no breaker{why}"
        if set(act.scope) != set(b.scope):
            given = ", ".join(sorted(act.scope)) or "nothing"
            return "bad_scope", f"scope must name {', '.join(b.scope)} (rule {self.rule.id}'s breaker), got {given}"
        scope = {f: act.scope[f] for f in b.scope}
        skey = ",".join(f"{k}={v}" for k, v in scope.items())
        s = self.scopes.get(skey)
        is_open = s is not None and s.expires > now and not s.closed
        h = self.holds.get(skey)
        reason = f"{act.action} by {act.by}: {act.reason}"
        if act.action == "release":
            if h is None:
                return "no_hold", f"breaker {skey} of rule {self.rule.id} is not held"
            self._end_hold(
                skey, now, h, act.by, f"released by {act.by}" + (f": {act.reason}" if act.reason else ""), out
            )
            return None
        if act.action == "close":
            if not is_open:
                return "not_open", f"breaker {skey} of rule {self.rule.id} is not open"
            if h is not None:
                del self.holds[skey]  # closing ends a hold_open
            self._operator_close(skey, scope, now, reason, act.by, out)
            return None
        self.holds[skey] = Hold(act.action, act.until, act.by, act.reason or "", now, scope)
        self.timers.add(act.until, _hold_timer(skey))
        if act.action == "hold_closed":
            if is_open:
                self._operator_close(skey, scope, now, reason, act.by, out)
            return None
        # hold_open: open until `until`; a new command says so if it is open already.
        s = self.scopes.get(skey)
        groups = s.groups if s is not None else set()
        alert_id = s.alert_id if s is not None else ""
        s = ScopeState(now, act.until, _h(f"{self.rule.id}|{skey}|{now}|hold_open|{act.by}", 16), alert_id)
        s.groups = groups
        self.scopes[skey] = s
        self._command("open", skey, scope, s, now, reason, out, by=act.by)
        return None

    def _operator_close(self, skey: str, scope: dict, now: int, reason: str, by: str, out: list[Output]) -> None:
        s = self.scopes[skey]
        if not s.groups:  # nothing fires: it is simply over
            del self.scopes[skey]
        else:
            s.closed = True
        self._command("close", skey, scope, s, now, reason, out, by=by)
        s.expires = now

    def _end_hold(self, skey: str, now: int, h: Hold, by: str | None, reason: str, out: list[Output]) -> None:
        """A hold ends (its `until`, or a release): the breaker follows the
        alerts again. Still firing: open (a new command, for the ttl); held
        open and firing no more: close."""
        assert self.breaker is not None
        del self.holds[skey]
        s = self.scopes.get(skey)
        if s is None:
            return
        if s.groups:
            n = ScopeState(now, now + self.ttl, _h(f"{self.rule.id}|{skey}|{now}|open", 16), s.alert_id)
            n.groups = s.groups
            self.scopes[skey] = n
            self._command("open", skey, h.scope, n, now, f"still firing after the hold: {reason}", out, by=by)
            return
        del self.scopes[skey]
        if h.kind == "hold_open":
            self._command("close", skey, h.scope, s, now, reason, out, by=by)

    def _ack(self, act: Any, now: int) -> tuple[str, str] | None:
        n = 0
        want = {k: str(v) for k, v in act.scope.items()}
        for key, a in self.active.items():
            group = self.group_of(key)
            if all(k in group and str(group[k]) == v for k, v in want.items()):
                a.ack = {"by": act.by, "reason": act.reason, "ts": format_ts(now)}
                n += 1
        if not n:
            where = ", ".join(f"{k}={v}" for k, v in want.items()) or "any group"
            return "no_alert", f"rule {self.rule.id} has no firing alert for {where}"
        return None

    @property
    def next_due(self) -> float:
        return self.timers.next


# A resolved record's message unless the rule gives `resolved_message`: the
# firing wording ("10 complaints, up from 20") reads wrongly once it is over.
RESOLVED_DEFAULT = "{rule_id} resolved{where}: value {value}, threshold {threshold}"
