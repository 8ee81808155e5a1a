"""Backtest: run one rule set (or a candidate and a baseline) over recorded events.

`backtest(paths, rules, baseline=None)` reads replay files (`{"topic",
"value"}` lines, as `anomalyd simulate` writes them) and `kcat -J` dumps,
runs the engine over them exactly as `anomalyd replay` does, and returns a
`Backtest` whose `to_dict()` is the `--json` report.

Input
-----
One file is read in its own order, as `replay` reads it. Several files are
merged by event time, each read in its own order (the way the service merges
partitions), so per-topic `kcat -J` dumps can be given side by side; ties go
to the file named first. A line that is not a valid event (a dead letter)
keeps its place in its file. The same merged stream is fed to every rule set.

The event-time span is from the first accepted event's `ts` to the stream's
event time at the end of the input (the largest `ts`; a replay never flushes
past its last event).

Per rule
--------
- ``fired`` / ``resolved``: alert records of each status (live and shadow);
  ``open_at_end``: episodes still firing when the input ends.
- ``groups``: distinct groups that fired.
- ``alerts_per_hour``: ``fired`` / the span in hours (null for an empty span).
- ``firing_ms``: the sum of the rule's episodes (firing -> resolved); an
  episode still open at the end of the input counts until the last event time.
- ``breaker_opens``: ``open`` breaker commands (re-opens after a lapsed ttl count).
- ``noisiest``: the top 5 groups by firings (ties: longer firing time, then
  the group's JSON text).

Diff against a baseline
-----------------------
An *episode* is one firing alert and its resolution, identified by
``rule_id`` + ``group`` + ``started_at``. Per rule id (in either set):
``only_new`` (episodes only the candidate rules raise), ``only_old`` (only the
baseline raises), ``both``, and ``ended_differently`` (in both, but resolved
at different times or open at the end in just one). ``status`` says whether
the rule was ``added``, ``removed``, ``changed`` (definition differs) or
``unchanged``.

Precision and recall against simulator labels
----------------------------------------------
`anomalyd simulate` marks the events of each injected anomaly with an
envelope key ``"label": "<kind>"``. Kinds map to rules (``KIND_RULES``, the
default rule set's ids); any rule can also claim a kind with a tag
``label:<kind>``.

- **Anomaly**: the labelled events of one kind, in event-time order, split
  wherever two consecutive ones are more than ``label_gap_ms`` (default 10m)
  apart. An anomaly is named ``<kind>@<first event id>`` and spans from its
  first to its last labelled event.
- **True positive**: a firing of a rule mapped to kind K that either
  (a) has an evidence event id labelled K, or
  (b) started within a K anomaly's span, extended by the rule's ``window``
  (0 for rules without one), and its group is the anomaly's: every field of
  the alert's group has that value on at least one of the anomaly's labelled
  events (a global group always matches). (b) covers alerts raised by a
  window timer, whose evidence may be empty.
  Any other firing of the rule is a false positive.
- **precision** = true positives / firings; null when the rule never fired.
- **recall** = anomalies of kind K matched by at least one true-positive
  firing / anomalies of kind K.
- A rule is scored only when the input carries at least one anomaly of its
  kind; otherwise ``score`` is null (for instance ``silent-channel`` removes
  orders rather than adding labelled ones, so ``order-feed-silent`` is not
  scored on simulated traffic).

The JSON report (``to_dict()``, keys stable, ``report_version`` 1)
-------------------------------------------------------------------
``{report_version, inputs, events: {total, by_topic, dead_letters, late,
first_ts, last_ts, span_ms, span_hours}, labels: null | {events, gap_ms,
kinds: {kind: {anomalies, events}}, anomalies: [{id, kind, start, end, events,
detected_by}]}, current: RUN, baseline: null | RUN, diff: null | {rules:
{rule_id: {status, only_new, only_old, both, ended_differently, new_episodes,
old_episodes}}, totals}}`` where RUN is ``{rules_dir, ruleset_version, rules:
{rule_id: {rule_id, type, source, severity, mode, breaker, kind, fired,
resolved, open_at_end, groups, alerts_per_hour, firing_ms, breaker_opens,
noisiest: [{group, firings, firing_ms}], score: null | {kind, anomalies,
detected, missed, true_positives, false_positives, precision, recall}}},
totals}``. Times are RFC 3339 UTC, durations milliseconds.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from ..engine.actions import OPERATOR, decode_action_line
from ..engine.decode import Rejected, decode_line
from ..engine.engine import Engine
from ..engine.lifecycle import ALERTS, COMMANDS, SHADOW_ALERTS
from ..engine.rules.loader import RuleSet, load_rules
from ..engine.rules.model import RuleCore
from ..engine.timeutil import format_ts, parse_ts
from ..engine.types import EngineConfig
from ..engine.types.sequence import SequenceRunner

REPORT_VERSION = 1
HOUR_MS = 3_600_000
TOP_GROUPS = 5
DEFAULT_LABEL_GAP_MS = 10 * 60_000

# Simulator anomaly kind -> the default rule that should catch it.
KIND_RULES: dict[str, str] = {
    "oversell": "negative-stock",
    "price-drop": "order-price-swing",
    "payment-spike": "payment-amount-swing",
    "complaint-surge": "complaint-surge",
    "failure-ratio": "payment-failure-ratio",
    "error-burst": "payment-error-burst",
    "silent-channel": "order-feed-silent",
    "unpaid-orders": "unpaid-orders-holding-stock",
    "amount-mismatch": "payment-order-mismatch",
    "channel-incident": "payment-channel-incident",
    "below-floor": "price-below-floor",
    "refund-spike": "refund-spike",
    "coupon-abuse": "coupon-abuse",
}
_LABEL_TAG = "label:"


def group_key(group: dict) -> str:
    return json.dumps(group, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def group_text(group: dict) -> str:
    """`sku=SKU-1`, `method=card, error_code=E_RISK`, or `(all)` for the global group."""
    return ", ".join(f"{k}={v}" for k, v in group.items()) if group else "(all)"


def rule_kind(rule: RuleCore, kinds: dict[str, str] = KIND_RULES) -> str | None:
    """The simulator label kind a rule is meant to catch, if any."""
    for tag in rule.tags:
        if tag.startswith(_LABEL_TAG) and len(tag) > len(_LABEL_TAG):
            return tag[len(_LABEL_TAG) :]
    for kind, rid in kinds.items():
        if rid == rule.id:
            return kind
    return None


# -- input --------------------------------------------------------------------


@dataclass
class Line:
    """One input line, decoded once and shared by every rule set."""

    ts: int  # event time; for an undecodable line, the previous ts of its file
    file: int
    seq: int
    lineno: int
    raw: bytes
    topic: str | None = None
    event: Any = None  # None: rejected (dead letter)
    label: str | None = None


def _label_of(raw: bytes) -> str | None:
    if b'"label"' not in raw:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    lab = obj.get("label") if isinstance(obj, dict) else None
    return lab if isinstance(lab, str) and lab else None


def _action(raw: bytes) -> Any:
    """An operator-action line's action; None for anything else (and a bad
    action, which the engine's process_line dead-letters with its reason)."""
    try:
        return decode_action_line(raw)
    except Rejected:
        return None


def _read(path: str, index: int) -> Iterator[Line]:
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    last_ts = -1
    try:
        for n, raw in enumerate(f, 1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            ln = Line(last_ts, index, n, n, raw)
            try:
                ln.topic, ln.event = decode_line(raw)
            except Rejected as exc:
                act = _action(raw) if exc.code == "unknown_topic" else None
                if act is not None:  # an operator action, ordered by its ts like an event
                    ln.topic, ln.event = OPERATOR, act
                    ln.ts = last_ts = act.ts
            else:
                ln.ts = last_ts = ln.event.ts
                ln.label = _label_of(raw)
            yield ln
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def read_lines(paths: list[str]) -> Iterator[Line]:
    """All input lines; several files merged by event time (each in its own order)."""
    if len(paths) == 1:
        return _read(paths[0], 0)
    return heapq.merge(*(_read(p, i) for i, p in enumerate(paths)), key=lambda ln: (ln.ts, ln.file, ln.seq))


# -- results ------------------------------------------------------------------


@dataclass
class Episode:
    rule_id: str
    group: dict
    start: int
    end: int | None = None  # resolved at; None while open at the end of input
    alert_id: str = ""
    severity: str = ""
    value: Any = None
    threshold: Any = None
    message: str = ""
    evidence: list[str] = field(default_factory=list)
    verdict: str | None = None  # "tp" / "fp" when the rule is scored
    anomalies: list[str] = field(default_factory=list)  # anomaly ids it matched
    inputs: str = ""  # a correlate rule's: the input alerts firing when it fired

    @property
    def gkey(self) -> str:
        return group_key(self.group)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rule_id, self.gkey, self.start)

    def duration(self, last: int) -> int:
        return max(0, (self.end if self.end is not None else last) - self.start)

    def to_dict(self) -> dict:
        return {
            "rule_id": self.rule_id,
            "group": self.group,
            "started_at": format_ts(self.start),
            "resolved_at": format_ts(self.end) if self.end is not None else None,
            "alert_id": self.alert_id,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
            **({"inputs": self.inputs} if self.inputs else {}),
        }


@dataclass
class Anomaly:
    """One labelled anomaly: a run of labelled events of one kind."""

    kind: str
    first_id: str
    start: int
    end: int
    event_ids: list[str] = field(default_factory=list)
    fields: dict[str, set] = field(default_factory=lambda: defaultdict(set))

    @property
    def id(self) -> str:
        return f"{self.kind}@{self.first_id}"

    def matches_group(self, group: dict) -> bool:
        return all(_hashable(v) in self.fields.get(k, ()) for k, v in group.items())


def _hashable(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def _event_fields(ev: Any) -> dict[str, Any]:
    d = msgspec.to_builtins(ev)
    attrs = d.pop("attrs", None) or {}
    for k, v in attrs.items():
        d[f"attrs.{k}"] = v
    return d


@dataclass
class RuleRun:
    rule: RuleCore
    episodes: list[Episode] = field(default_factory=list)
    fired: int = 0
    resolved: int = 0
    breaker_opens: int = 0
    kind: str | None = None
    score: dict | None = None

    @property
    def id(self) -> str:
        return self.rule.id

    def open_at_end(self) -> int:
        return sum(1 for e in self.episodes if e.end is None)

    def groups(self) -> int:
        return len({e.gkey for e in self.episodes})

    def firing_ms(self, last: int) -> int:
        return sum(e.duration(last) for e in self.episodes)

    def noisiest(self, last: int, n: int = TOP_GROUPS) -> list[dict]:
        firings: Counter[str] = Counter()
        time: Counter[str] = Counter()
        groups: dict[str, dict] = {}
        for e in self.episodes:
            k = e.gkey
            groups[k] = e.group
            firings[k] += 1
            time[k] += e.duration(last)
        top = sorted(firings, key=lambda k: (-firings[k], -time[k], k))[:n]
        return [{"group": groups[k], "firings": firings[k], "firing_ms": time[k]} for k in top]


@dataclass
class Run:
    """One rule set over the input."""

    name: str  # "current" / "baseline"
    source: str  # rules directory (or "")
    ruleset: RuleSet | None
    engine: Engine
    rules: dict[str, RuleRun] = field(default_factory=dict)
    open: dict[tuple[str, str], Episode] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.engine.ruleset_version

    def collect(self, outs: list) -> None:
        for topic, _key, v in outs:
            if topic == ALERTS or topic == SHADOW_ALERTS:
                rr = self.rules.get(v["rule_id"])
                if rr is None:  # cannot happen: every alert comes from a loaded rule
                    continue
                okey = (v["rule_id"], v["fingerprint"])
                if v["status"] == "firing":
                    rr.fired += 1
                    ep = Episode(
                        v["rule_id"],
                        v["group"],
                        parse_ts(v["started_at"]),
                        None,
                        v["alert_id"],
                        v["severity"],
                        v["value"],
                        v["threshold"],
                        v["message"],
                        list(v["evidence"]),
                        inputs=str(v["details"].get("alerts", "")) if v["source"] == "alerts" else "",
                    )
                    rr.episodes.append(ep)
                    self.open[okey] = ep
                else:
                    rr.resolved += 1
                    opened = self.open.pop(okey, None)
                    if opened is None:  # defensive: a resolution without its firing
                        opened = Episode(v["rule_id"], v["group"], parse_ts(v["started_at"]), severity=v["severity"])
                        rr.episodes.append(opened)
                    opened.end = parse_ts(v["ts"])
            elif topic == COMMANDS and v["action"] == "open":
                rr = self.rules.get(v["rule_id"])
                if rr is not None:
                    rr.breaker_opens += 1


@dataclass
class Backtest:
    inputs: list[str]
    current: Run
    baseline: Run | None
    events: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    late: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    anomalies: list[Anomaly] = field(default_factory=list)
    labelled_events: int = 0
    label_gap_ms: int = DEFAULT_LABEL_GAP_MS

    # -- span ---------------------------------------------------------------
    @property
    def span_ms(self) -> int:
        if self.first_ts is None or self.last_ts is None:
            return 0
        return max(0, self.last_ts - self.first_ts)

    @property
    def end(self) -> int:
        return self.last_ts if self.last_ts is not None else 0

    def per_hour(self, n: int) -> float | None:
        return n * HOUR_MS / self.span_ms if self.span_ms > 0 else None

    @property
    def labelled(self) -> bool:
        return bool(self.anomalies)

    # -- report -------------------------------------------------------------
    def rule_stats(self, run: Run) -> dict[str, dict]:
        last = self.end
        out = {}
        for rid in sorted(run.rules):
            rr = run.rules[rid]
            r = rr.rule
            out[rid] = {
                "rule_id": rid,
                "type": r.type,  # type: ignore[attr-defined]
                "source": r.source,
                "severity": r.severity,
                "mode": r.mode,
                "breaker": r.breaker.action if r.breaker and r.mode == "live" else None,
                "kind": rr.kind,
                "fired": rr.fired,
                "resolved": rr.resolved,
                "open_at_end": rr.open_at_end(),
                "groups": rr.groups(),
                "alerts_per_hour": _round(self.per_hour(rr.fired)),
                "firing_ms": rr.firing_ms(last),
                "breaker_opens": rr.breaker_opens,
                "noisiest": rr.noisiest(last),
                "score": rr.score,
            }
            runner = run.engine.runners.get(rid)
            if isinstance(runner, SequenceRunner):  # how its expectations ended
                out[rid]["outcomes"] = runner.outcome_counts()
        return out

    def run_dict(self, run: Run) -> dict:
        stats = self.rule_stats(run)
        fired = sum(s["fired"] for s in stats.values())
        totals = {
            "fired": fired,
            "resolved": sum(s["resolved"] for s in stats.values()),
            "open_at_end": sum(s["open_at_end"] for s in stats.values()),
            "groups": sum(s["groups"] for s in stats.values()),
            "alerts_per_hour": _round(self.per_hour(fired)),
            "firing_ms": sum(s["firing_ms"] for s in stats.values()),
            "breaker_opens": sum(s["breaker_opens"] for s in stats.values()),
        }
        scored = [rr for rr in run.rules.values() if rr.score]
        if scored:
            tp = sum(rr.score["true_positives"] for rr in scored)  # type: ignore[index]
            fp = sum(rr.score["false_positives"] for rr in scored)  # type: ignore[index]
            n = sum(rr.score["anomalies"] for rr in scored)  # type: ignore[index]
            det = sum(rr.score["detected"] for rr in scored)  # type: ignore[index]
            totals["score"] = {
                "true_positives": tp,
                "false_positives": fp,
                "anomalies": n,
                "detected": det,
                "precision": _round(tp / (tp + fp)) if tp + fp else None,
                "recall": _round(det / n) if n else None,
            }
        else:
            totals["score"] = None
        return {"rules_dir": run.source, "ruleset_version": run.version, "rules": stats, "totals": totals}

    def diff(self) -> dict | None:
        if self.baseline is None:
            return None
        new, old = self.current, self.baseline
        rules: dict[str, dict] = {}
        tot: Counter[str] = Counter()
        for rid in sorted(set(new.rules) | set(old.rules)):
            a = new.rules.get(rid)
            b = old.rules.get(rid)
            if a is None:
                status = "removed"
            elif b is None:
                status = "added"
            else:
                status = "unchanged" if a.rule.version == b.rule.version else "changed"
            ea = {e.key: e for e in (a.episodes if a else [])}
            eb = {e.key: e for e in (b.episodes if b else [])}
            only_new = [ea[k] for k in sorted(ea.keys() - eb.keys(), key=_ep_order)]
            only_old = [eb[k] for k in sorted(eb.keys() - ea.keys(), key=_ep_order)]
            both = ea.keys() & eb.keys()
            ended = sum(1 for k in both if ea[k].end != eb[k].end)
            d: dict[str, Any] = {
                "status": status,
                "only_new": len(only_new),
                "only_old": len(only_old),
                "both": len(both),
                "ended_differently": ended,
                "new_episodes": [e.to_dict() for e in only_new],
                "old_episodes": [e.to_dict() for e in only_old],
            }
            for k in ("only_new", "only_old", "both", "ended_differently"):
                tot[k] += d[k]
            rules[rid] = d
        return {"rules": rules, "totals": {k: tot[k] for k in ("only_new", "only_old", "both", "ended_differently")}}

    def diff_status(self) -> dict[tuple[str, str, int], str]:
        """Episode key -> "both" / "new" / "old" (for the timelines)."""
        if self.baseline is None:
            return {}
        a = {e.key for rr in self.current.rules.values() for e in rr.episodes}
        b = {e.key for rr in self.baseline.rules.values() for e in rr.episodes}
        return {**{k: "old" for k in b - a}, **{k: "new" for k in a - b}, **{k: "both" for k in a & b}}

    def to_dict(self) -> dict:
        labels = None
        if self.labelled:
            kinds: dict[str, dict] = {}
            for an in self.anomalies:
                k = kinds.setdefault(an.kind, {"anomalies": 0, "events": 0})
                k["anomalies"] += 1
                k["events"] += len(an.event_ids)
            detected: dict[str, set] = {rid: set() for rid in self.current.rules}
            for rr in self.current.rules.values():
                for e in rr.episodes:
                    detected[rr.id].update(e.anomalies)
            labels = {
                "events": self.labelled_events,
                "gap_ms": self.label_gap_ms,
                "kinds": dict(sorted(kinds.items())),
                "anomalies": [
                    {
                        "id": an.id,
                        "kind": an.kind,
                        "start": format_ts(an.start),
                        "end": format_ts(an.end),
                        "events": len(an.event_ids),
                        "detected_by": sorted(rid for rid, s in detected.items() if an.id in s),
                    }
                    for an in self.anomalies
                ],
            }
        return {
            "report_version": REPORT_VERSION,
            "inputs": list(self.inputs),
            "events": {
                "total": self.events,
                "by_topic": dict(sorted(self.by_topic.items())),
                "dead_letters": self.dead_letters,
                "late": self.late,
                "first_ts": format_ts(self.first_ts) if self.first_ts is not None else None,
                "last_ts": format_ts(self.last_ts) if self.last_ts is not None else None,
                "span_ms": self.span_ms,
                "span_hours": _round(self.span_ms / HOUR_MS),
            },
            "labels": labels,
            "current": self.run_dict(self.current),
            "baseline": self.run_dict(self.baseline) if self.baseline else None,
            "diff": self.diff(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


def _ep_order(k: tuple[str, str, int]) -> tuple:
    return (k[2], k[1])


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


# -- running ------------------------------------------------------------------


def _ruleset(rules: RuleSet | str | Path) -> tuple[RuleSet, str]:
    if isinstance(rules, RuleSet):
        return rules, ""
    return load_rules(rules), str(rules)


def backtest(
    paths: Iterable[str],
    rules: RuleSet | str | Path,
    baseline: RuleSet | str | Path | None = None,
    config: EngineConfig | None = None,
    kinds: dict[str, str] = KIND_RULES,
    label_gap_ms: int = DEFAULT_LABEL_GAP_MS,
) -> Backtest:
    """Run `rules` (and `baseline`, if given) over the input files.

    Rules directories are loaded with `load_rules` (raises RuleLoadError).
    Files are read with `open` (raises OSError)."""
    paths = list(paths)
    config = config or EngineConfig()
    runs: list[Run] = []
    for name, rs in (("current", rules), ("baseline", baseline)):
        if rs is None:
            continue
        ruleset, src = _ruleset(rs)
        eng = Engine(ruleset, config)
        run = Run(name, src, ruleset, eng)
        for r in ruleset.enabled():
            run.rules[r.id] = RuleRun(r, kind=rule_kind(r, kinds))
        runs.append(run)
    for p in paths:  # fail early, before any work, on a missing file
        if p != "-":
            with open(p, "rb"):
                pass

    first = runs[0].engine
    bt = Backtest(paths, runs[0], runs[1] if len(runs) > 1 else None, label_gap_ms=label_gap_ms)
    labelled: list[tuple[int, str, str, dict]] = []  # (ts, kind, event id, fields)
    first_ts: int | None = None
    for ln in read_lines(paths):
        ev = ln.event
        if ev is None or ln.topic is None:  # set together: both or neither
            for run in runs:
                run.collect(run.engine.process_line(ln.raw, ln.lineno))
            continue
        for run in runs:
            outs = run.engine.process_event(ln.topic, ev)
            if outs:
                run.collect(outs)
        ts = ev.ts
        if ts <= first.clock.now:  # accepted (not refused as too far in the future)
            if first_ts is None or ts < first_ts:
                first_ts = ts
            if ln.label is not None:
                labelled.append((ts, ln.label, ev.event_id, _event_fields(ev)))

    s = first.summary()
    bt.events = s["events"]
    bt.by_topic = s["by_topic"]
    bt.dead_letters = sum(s["invalid"].values())
    bt.late = s["late"]
    bt.first_ts = first_ts
    bt.last_ts = first.clock.now if first.clock.now >= 0 else None
    bt.labelled_events = len(labelled)
    bt.anomalies = _anomalies(labelled, label_gap_ms)
    if bt.anomalies:
        for run in runs:
            _score(run, bt.anomalies)
    return bt


def _anomalies(labelled: list[tuple[int, str, str, dict]], gap: int) -> list[Anomaly]:
    by_kind: dict[str, list] = defaultdict(list)
    for item in labelled:
        by_kind[item[1]].append(item)
    out: list[Anomaly] = []
    for kind, items in by_kind.items():
        items.sort(key=lambda x: x[0])  # stable: file order among equal ts
        cur: Anomaly | None = None
        for ts, _, eid, fields in items:
            if cur is None or ts - cur.end > gap:
                cur = Anomaly(kind, eid, ts, ts)
                out.append(cur)
            cur.end = ts
            cur.event_ids.append(eid)
            for k, v in fields.items():
                if v is not None:
                    cur.fields[k].add(_hashable(v))
    out.sort(key=lambda a: (a.start, a.kind, a.first_id))
    return out


def _score(run: Run, anomalies: list[Anomaly]) -> None:
    by_kind: dict[str, list[Anomaly]] = defaultdict(list)
    owner: dict[tuple[str, str], Anomaly] = {}  # (kind, event id) -> anomaly
    for an in anomalies:
        by_kind[an.kind].append(an)
        for eid in an.event_ids:
            owner[(an.kind, eid)] = an
    for rr in run.rules.values():
        kind = rr.kind
        if kind is None or kind not in by_kind:
            rr.score = None
            continue
        grace = rr.rule.ms("window") if getattr(rr.rule, "window", None) else 0
        detected: set[str] = set()
        tp = 0
        for e in rr.episodes:
            hits = {owner[(kind, eid)].id for eid in e.evidence if (kind, eid) in owner}
            for an in by_kind[kind]:
                if an.start <= e.start <= an.end + grace and an.matches_group(e.group):
                    hits.add(an.id)
            e.anomalies = sorted(hits)
            e.verdict = "tp" if hits else "fp"
            if hits:
                tp += 1
                detected |= hits
        n = len(by_kind[kind])
        fired = len(rr.episodes)
        rr.score = {
            "kind": kind,
            "anomalies": n,
            "detected": len(detected),
            "missed": sorted(an.id for an in by_kind[kind] if an.id not in detected),
            "true_positives": tp,
            "false_positives": fired - tp,
            "precision": _round(tp / fired) if fired else None,
            "recall": _round(len(detected) / n),
        }
