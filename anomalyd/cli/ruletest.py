"""`anomalyd rules test FILE...`: rule unit tests in the spirit of `promtool test rules`.

A test file (YAML):

    rule_files: [..]                 # directories or files, relative to this file
    start: 2026-06-18T00:00:00+08:00 # optional: events may then give ts as "+5m"
    tests:
      - name: flash sale oversells SKU-1
        input:
          - {topic: inventory, ts: "+0s", sku: SKU-1, available: 100}
          - {topic: inventory, repeat: 3, every: 1m, ts: "+1m", sku: SKU-1, available: -50}
        expect_alerts:               # every alert emitted, in order; keys given are compared
          - {rule_id: negative-stock, status: firing, group: {sku: SKU-1}, value: -50}
        expect_commands:
          - {action: open, breaker: pause_sales, scope: {sku: SKU-1}}
        expect_dead_letters: 0       # a count, or a list of partial records
        rules: [negative-stock]      # optional: compare only these rules' output

Input items carry the event fields plus `topic`; `event_id` defaults to a
unique one; `repeat`/`every` expand one item into several events; an item
with `raw: "..."` sends that exact text as the record value (malformed input).
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from ..engine.engine import Engine
from ..engine.lifecycle import ALERTS, COMMANDS, DEAD_LETTER, SHADOW_ALERTS
from ..engine.rules.loader import RuleLoadError, RuleSet, load_rules
from ..engine.timeutil import format_ts, parse_duration, parse_ts
from ..engine.types import EngineConfig


class TestFileError(Exception):
    pass


def _plain(value: Any) -> Any:
    """YAML turns unquoted timestamps into datetimes: back to RFC 3339 text."""
    if isinstance(value, (datetime, date)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TestFileError(f"timestamp {value} needs an offset, e.g. +08:00")
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _time(value: Any, start: int | None, where: str) -> Any:
    if isinstance(value, str) and value[:1] in "+-" and value[1:2].isdigit():
        if start is None:
            raise TestFileError(f"{where}: relative time {value!r} needs a `start`")
        off = parse_duration(value[1:])
        return start + off if value[0] == "+" else start - off
    return value


def _expand_input(items: list, start: int | None, name: str) -> list[str]:
    """Input items -> replay lines, stably sorted by event time so that
    interleaved `repeat` series read naturally (raw items keep their place)."""
    keyed: list[tuple[int, int, str]] = []
    last = 0

    class _L(list):
        def append(self, line: str, ts: Any = None) -> None:  # type: ignore[override]
            nonlocal last
            if isinstance(ts, int) and not isinstance(ts, bool):
                last = ts
            keyed.append((last, len(keyed), line))

    lines = _L()
    n = 0
    for i, item in enumerate(items or []):
        where = f"test {name!r} input {i + 1}"
        if not isinstance(item, dict) or "topic" not in item:
            raise TestFileError(f"{where}: each input needs a topic")
        item = dict(item)
        topic = item.pop("topic")
        if "raw" in item:  # the record value exactly as given (malformed input)
            lines.append(json.dumps({"topic": topic, "value": str(item["raw"])}))
            continue
        repeat = int(item.pop("repeat", 1))
        every = parse_duration(item.pop("every", "0s"))
        base = _time(item.get("ts"), start, where)
        for r in range(repeat):
            n += 1
            ev = dict(item)
            if "ts" in ev:
                ev["ts"] = base + r * every if isinstance(base, int) else base
            ev.setdefault("event_id", f"{topic}-{n}")
            if repeat > 1 and "event_id" in item:
                ev["event_id"] = f"{item['event_id']}-{r + 1}"
            ts = ev.get("ts")
            if isinstance(ts, str):
                try:
                    ts = parse_ts(ts)
                except ValueError:
                    ts = None
            lines.append(json.dumps({"topic": topic, "value": ev}), ts)
    return [line for _, _, line in sorted(keyed)]


def _matches(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _matches(v, got[k]) for k, v in want.items())
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and abs(float(want) - float(got)) < 1e-6
    return want == got


def _compare(kind: str, want: list, got: list, start: int | None) -> list[str]:
    problems = []
    want = [dict(w) for w in want]
    for w in want:
        for k in ("ts", "started_at", "expires_at"):
            if k in w:
                t = _time(w[k], start, kind)
                w[k] = format_ts(parse_ts(t)) if isinstance(t, (int, str)) else t
    ok = len(want) == len(got) and all(_matches(w, g) for w, g in zip(want, got))
    if ok:
        return []
    problems.append(f"  {kind}: expected {len(want)}, got {len(got)}")
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        if w is not None and g is not None and _matches(w, g):
            problems.append(f"    = {json.dumps(w, sort_keys=True)}")
            continue
        if w is not None and g is not None:
            problems.append(f"    ! #{i + 1} {json.dumps(_brief(g), sort_keys=True)}")
            for k in sorted(w):
                if k not in g or not _matches(w[k], g[k]):
                    problems.append(f"        {k}: expected {json.dumps(w[k])}, got {json.dumps(g.get(k, '<missing>'))}")
            continue
        if w is not None:
            problems.append(f"    - #{i + 1} expected {json.dumps(w, sort_keys=True)} (missing)")
        if g is not None:
            problems.append(f"    + #{i + 1} unexpected {json.dumps(_brief(g), sort_keys=True)}")
    return problems


def _brief(rec: dict) -> dict:
    keys = ("rule_id", "status", "group", "value", "ts", "action", "breaker", "scope", "reason_code", "reason", "source_topic")
    return {k: rec[k] for k in keys if k in rec}


def _load_rule_files(paths: list[Path]) -> RuleSet:
    merged = RuleSet()
    errors = []
    for p in paths:
        try:
            rs = load_rules(p)
        except RuleLoadError as exc:
            errors.extend(exc.errors)
            continue
        merged.rules.extend(rs.rules)
        merged.files.extend(rs.files)
    if errors:
        raise RuleLoadError(errors)
    return merged


def run_file(path: Path, verbose: bool = False) -> tuple[int, int, list[str]]:
    """-> (passed, failed, report lines)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return 0, 1, [f"{path}: cannot read test file: {exc}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        return 0, 1, [f"{path}: a test file needs a `tests:` list"]
    try:
        doc = _plain(doc)
    except TestFileError as exc:
        return 0, 1, [f"{path}: {exc}"]
    rule_paths = [(path.parent / p).resolve() for p in doc.get("rule_files", [".."])]
    try:
        ruleset = _load_rule_files(rule_paths)
    except RuleLoadError as exc:
        return 0, 1, [f"{path}: rules failed to load:"] + [f"  {e}" for e in exc.errors]
    passed = failed = 0
    report: list[str] = []
    for i, t in enumerate(doc["tests"]):
        if not isinstance(t, dict):
            failed += 1
            report.append(f"FAIL {path}: test {i + 1}: each test must be a mapping")
            continue
        name = t.get("name", f"test {i + 1}")
        try:
            ok, lines_ = _run_test(t, doc, ruleset, path, name, verbose)
        except (TestFileError, ValueError, TypeError, KeyError) as exc:
            ok, lines_ = False, [f"FAIL {path}: {name}: {exc}"]
        passed += ok
        failed += not ok
        report.extend(lines_)
    return passed, failed, report


def _run_test(t: dict, doc: dict, ruleset: RuleSet, path: Path, name: str, verbose: bool) -> tuple[bool, list[str]]:
    report: list[str] = []
    if True:
        start_raw = t.get("start", doc.get("start"))
        start = parse_ts(start_raw) if start_raw is not None else None
        lateness = parse_duration(t.get("allowed_lateness", doc.get("allowed_lateness", "1m")))
        lines = _expand_input(t.get("input", []), start, name)
        only = set(t["rules"]) if "rules" in t else None
        rules = [lr.rule for lr in ruleset.rules if only is None or lr.rule.id in only]
        if only is not None and (missing := only - {r.id for r in rules}):
            return False, [f"FAIL {path}: {name}: unknown rules {sorted(missing)}"]
        engine = Engine(rules, EngineConfig(allowed_lateness_ms=lateness))
        alerts, commands, dead = [], [], []
        for n, line in enumerate(lines, 1):
            for topic, _k, v in engine.process_line(line, n):
                (alerts if topic in (ALERTS, SHADOW_ALERTS) else commands if topic == COMMANDS else dead).append(v)
        problems: list[str] = []
        if "expect_alerts" in t:
            problems += _compare("alerts", t["expect_alerts"] or [], alerts, start)
        if "expect_commands" in t:
            problems += _compare("breaker commands", t["expect_commands"] or [], commands, start)
        if "expect_dead_letters" in t:
            exp = t["expect_dead_letters"]
            if isinstance(exp, int):
                if exp != len(dead):
                    problems.append(f"  dead letters: expected {exp}, got {len(dead)}")
                    problems += [f"    + {json.dumps(_brief(d))}" for d in dead]
            else:
                problems += _compare("dead letters", exp, dead, start)
        if problems:
            return False, [f"FAIL {path}: {name}"] + problems
        if verbose:
            report.append(f"ok   {path}: {name} ({len(alerts)} alerts, {len(commands)} commands)")
        return True, report


def run(files: list[str], verbose: bool = False) -> int:
    total_p = total_f = 0
    paths: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            paths.extend(sorted(p.glob("*.test.yaml")))
        elif p.exists():
            paths.append(p)
        else:
            print(f"anomalyd rules test: {f}: no such test file", file=sys.stderr)
            return 2  # a usage error, as for replay
    for p in paths:
        passed, failed, report = run_file(p, verbose)
        total_p += passed
        total_f += failed
        for line in report:
            print(line)
    print(f"rules test: {total_p} passed, {total_f} failed")
    return 1 if total_f else 0
