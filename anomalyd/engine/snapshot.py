"""Engine state to bytes and back, for restarts without loss.

Plain values only (dicts, lists, tuples, numbers, strings) serialised with
`marshal`, never pickle: a state record read back from a topic or a file
cannot execute code. A rule's state is restored only if the rule's version
(hash of its definition) is unchanged, as on a hot reload.
"""

from __future__ import annotations

import marshal
import zlib
from collections import Counter, deque
from typing import Any

from .lifecycle import Active, Hold, ScopeState
from .windows import EVIDENCE, History, WinState

FORMAT = 2  # 2: the clock is the stream time alone
_WIN = "\x00W"


def _enc(v: Any) -> Any:
    if isinstance(v, WinState):
        return (
            _WIN,
            v.buckets,
            list(v.evidence) if v.evidence is not None else None,
            v.at,
            v.tot,
            v.tot2,
            v.sched,
            v.hist.dump() if v.hist is not None else None,
        )
    return v


def _dec(v: Any) -> Any:
    if type(v) is tuple and v and v[0] == _WIN:
        st = WinState(evidence=v[2] is not None)
        st.buckets = v[1]
        if v[2] is not None:
            st.evidence = deque(v[2], maxlen=EVIDENCE)
        st.at, st.tot, st.tot2, st.sched = v[3], v[4], v[5], v[6]
        if len(v) > 7 and v[7] is not None:
            st.hist = History.load(v[7])
        return st
    return v


def runner_state(r) -> dict:
    life = r.life
    return {
        "version": r.version,
        "store": [(k, _enc(v)) for k, v in r.store.items()],
        "evicted": r.store.evicted,
        "rotate_at": r.store.rotate_at,
        "timers": r.timers.dump(),
        "active": {
            k: (a.started, a.alert_id, a.holds, a.last_true, a.value, a.threshold, a.details, a.ack)
            for k, a in life.active.items()
        },
        "pending": {
            k: (a.started, a.last_true, a.value, a.threshold, a.details, a.evidence) for k, a in life.pending.items()
        },
        "life_timers": life.timers.dump(),
        "scopes": {
            k: (list(s.groups), s.opened, s.expires, s.command_id, s.alert_id, s.closed) for k, s in life.scopes.items()
        },
        "holds": {k: h.dump() for k, h in life.holds.items()},
        "counts": dict(life.counts),
        "commands": dict(life.commands),
        "life_evicted": life.evicted,
        "last_fired": life.last_fired,
        "orphans": dict(life.orphans),
        "own": r.dump_state(),
    }


def load_runner(r, st: dict) -> None:
    r.store.load([(k, _dec(v)) for k, v in st["store"]])
    r.store.evicted = st["evicted"]
    r.store.rotate_at = st["rotate_at"]
    r.timers.load(st["timers"])
    life = r.life
    life.active = {}
    for k, (started, alert_id, holds, last_true, value, threshold, details, *ack) in st["active"].items():
        a = Active(started, alert_id)
        a.holds, a.last_true, a.value, a.threshold, a.details = holds, last_true, value, threshold, details
        a.ack = ack[0] if ack else None  # absent in snapshots of before operator actions
        life.active[k] = a
    life.pending = {}
    for k, (started, last_true, value, threshold, details, evidence) in st.get("pending", {}).items():
        a = Active(started, "")
        a.last_true, a.value, a.threshold, a.details, a.evidence = last_true, value, threshold, details, evidence
        life.pending[k] = a
    life.timers.load(st["life_timers"])
    life.scopes = {}
    for k, (groups, opened, expires, command_id, alert_id, *closed) in st["scopes"].items():
        s = ScopeState(opened, expires, command_id, alert_id)
        s.groups = set(groups)
        s.closed = bool(closed and closed[0])
        life.scopes[k] = s
    life.holds = {k: Hold(*h) for k, h in st.get("holds", {}).items()}
    life.counts = dict(st["counts"])
    life.commands = dict(st["commands"])
    life.evicted = st.get("life_evicted", 0)  # absent in snapshots before the firing-alert cap
    life.orphans = dict(st.get("orphans", {}))
    life.last_fired = st.get("last_fired", -1)
    if st.get("judge_from") is not None:  # snapshots of before 2026-12-02 (surge's own state)
        r.load_state({"judge_from": st["judge_from"]})
    r.load_state(st.get("own"))


def dump(engine, extra: Any = None) -> bytes:
    """The engine's whole state (plus `extra`, plain values) as bytes."""
    state = {
        "format": FORMAT,
        "clock": engine.clock.now,
        "started": engine.started,
        "late": engine.late,
        "disorder": engine.disorder,
        "future": engine.future,
        "next_tick": engine.next_tick,
        "consumed": dict(engine.consumed),
        "invalid": dict(engine.invalid),
        "actions": dict(engine.actions),
        "rules": {rid: runner_state(r) for rid, r in engine.runners.items()},
        "extra": extra,
    }
    return zlib.compress(marshal.dumps(state), 1)


def load(engine, data: bytes) -> tuple[Any, dict[str, list[str]]]:
    """Restore state into an engine built with the current rules.
    -> (extra, {"restored": [...], "fresh": [...]})."""
    state = marshal.loads(zlib.decompress(data))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("unknown snapshot format")
    engine.clock.now = state["clock"]
    engine.started = state["started"]
    engine.late = state["late"]
    engine.disorder = state.get("disorder", 0)  # absent in snapshots of before 2026-12-01
    engine.future = state["future"]
    engine.next_tick = state["next_tick"]
    engine.consumed = Counter(state["consumed"])
    engine.invalid = Counter(state["invalid"])
    engine.actions = Counter(state.get("actions", {}))
    report: dict[str, list[str]] = {"restored": [], "fresh": []}
    for rid, r in engine.runners.items():
        st = state["rules"].get(rid)
        if st is not None and st["version"] == r.version:
            load_runner(r, st)
            report["restored"].append(rid)
        else:
            if engine.started:
                r.on_start(engine.clock.now, [])
            report["fresh"].append(rid)
    engine.recompute_due()
    return state["extra"], report
