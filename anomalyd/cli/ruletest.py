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
unique one; `repeat`/`every` expand one item into several events (`{n}` in
a value becomes the repeat's number: `order_id: "O-{n}"`); an item
with `raw: "..."` sends that exact text as the record value (malformed input).
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..engine.actions import OPERATOR
from ..engine.engine import Engine
from ..engine.events import EVENT_MODELS
from ..engine.lifecycle import ALERTS, COMMANDS, DEAD_LETTER, SHADOW_ALERTS
from ..engine.records import Alert, BreakerCommand, DeadLetter
from ..engine.rules.loader import RuleError, RuleLoadError, RuleSet, compose_file, did_you_mean, load_rules
from ..engine.timeutil import format_ts, parse_duration, parse_ts
from ..engine.types import EngineConfig
from ..engine.types.correlate import with_inputs

TOP_KEYS = ["rule_files", "start", "allowed_lateness", "tests"]
TEST_KEYS = [
    "name",
    "rules",
    "start",
    "allowed_lateness",
    "input",
    "expect_alerts",
    "expect_commands",
    "expect_dead_letters",
]
INPUT_KEYS = ["topic", "raw", "repeat", "every"]  # besides the topic's event fields
EXPECT_MODELS: dict[str, type[BaseModel]] = {
    "expect_alerts": Alert,
    "expect_commands": BreakerCommand,
    "expect_dead_letters": DeadLetter,
}
TIME_KEYS = ("ts", "started_at", "expires_at")


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


def _relative(value: Any) -> bool:
    return isinstance(value, str) and value[:1] in "+-" and value[1:2].isdigit()


def _time(value: Any, start: int | None, where: str) -> Any:
    if _relative(value):
        if start is None:
            raise TestFileError(f"{where}: relative time {value!r} needs a `start`")
        off = parse_duration(value[1:])
        return start + off if value[0] == "+" else start - off
    return value


def check_test_file(doc: Any, pos: dict, display: str, top: tuple[int, int]) -> list[RuleError]:
    """Every mistake in a composed test file, each at its FILE:LINE:COL:
    unknown keys (with a did-you-mean), wrong kinds of values, bad durations
    and times, unknown topics and event fields. Input events are not
    validated as events here: the engine does that when the test runs."""
    errs: list[RuleError] = []

    def err(path: tuple, msg: str, key: bool = False) -> None:
        p = pos.get(path)
        line, col = (p[0] if key else p[1]) if p else top
        errs.append(RuleError(display, line, col, msg))

    def keys(path: tuple, mapping: dict, allowed: list[str], what: str) -> None:
        for k in mapping:
            if k not in allowed:
                err(path + (k,), f"unknown key {k!r} in {what}{did_you_mean(k, allowed)}", key=True)

    def plain(path: tuple, value: Any) -> Any:
        try:
            return _plain(value)
        except TestFileError as exc:
            err(path, str(exc))
            return None

    def duration(path: tuple, value: Any) -> None:
        try:
            parse_duration(value)
        except ValueError as exc:
            err(path, f"{path[-1]}: {exc}")

    def when(path: tuple, value: Any, has_start: bool) -> None:
        """A time the runner itself reads: relative (+5m) or absolute."""
        value = plain(path, value)
        if _relative(value):
            if not has_start:
                err(path, f"{path[-1]}: relative time {value!r} needs a `start` (in the file or the test)")
            else:
                duration(path, value[1:])

    def start_ok(path: tuple, value: Any) -> bool:
        value = plain(path, value)
        if value is None:
            return False
        try:
            parse_ts(value)
            return True
        except (ValueError, TypeError):
            err(
                path,
                f"start: expected an RFC 3339 time with an offset (2026-06-18T00:00:00+08:00) or epoch ms, got {value!r}",
            )
            return False

    if doc is None:
        return [RuleError(display, *top, "empty file: expected a `tests:` list")]
    if not isinstance(doc, dict):
        return [RuleError(display, *top, "expected a mapping with a `tests:` list")]
    if "rules" in doc and "tests" not in doc:
        line, col = pos[("rules",)][0]
        return [
            RuleError(
                display,
                line,
                col,
                "this is a rules file (top-level `rules:`), not a rule test "
                "file (top-level `tests:`, e.g. rules/tests/*.test.yaml)",
            )
        ]
    keys((), doc, TOP_KEYS, "a test file")
    if "rule_files" in doc and not (
        isinstance(doc["rule_files"], list) and all(isinstance(f, str) for f in doc["rule_files"])
    ):
        err(("rule_files",), "rule_files: expected a list of directories or files, e.g. [..]")
    else:
        for i, f in enumerate(doc.get("rule_files", [])):
            if not (Path(display).parent / f).exists():
                err(
                    ("rule_files", i),
                    f"rule_files: no such directory or file {f!r} (relative to this file: {Path(display).parent / f})",
                )
    file_start = "start" in doc  # a bad start is reported once, not at every relative time
    if file_start:
        start_ok(("start",), doc["start"])
    if "allowed_lateness" in doc:
        duration(("allowed_lateness",), doc["allowed_lateness"])
    tests = doc.get("tests")
    if "tests" not in doc:
        errs.append(RuleError(display, *top, "missing `tests:` list"))
        return errs
    if not isinstance(tests, list):
        err(("tests",), "tests: expected a list of tests")
        return errs
    for i, t in enumerate(tests):
        tp = ("tests", i)
        if not isinstance(t, dict):
            err(tp, "each test must be a mapping (name, input, expect_alerts, ...)")
            continue
        keys(tp, t, TEST_KEYS, "a test")
        if "name" in t and not isinstance(t["name"], (str, int, float)):
            err(tp + ("name",), "name: expected text")
        if "rules" in t and not (isinstance(t["rules"], list) and all(isinstance(r, str) for r in t["rules"])):
            err(tp + ("rules",), "rules: expected a list of rule ids")
        has_start = "start" in t or file_start
        if "start" in t:
            start_ok(tp + ("start",), t["start"])
        if "allowed_lateness" in t:
            duration(tp + ("allowed_lateness",), t["allowed_lateness"])
        items = t.get("input")
        if items is not None and not isinstance(items, list):
            err(tp + ("input",), "input: expected a list of events")
            items = []
        for j, item in enumerate(items or []):
            ip = tp + ("input", j)
            if not isinstance(item, dict):
                err(ip, "each input must be a mapping with a topic")
                continue
            topic = item.get("topic")
            if "topic" not in item:
                err(ip, "missing key 'topic' in an input")
                continue
            if not isinstance(topic, str):
                err(ip + ("topic",), f"topic: expected one of {', '.join(EVENT_MODELS)}")
                continue
            if topic not in EVENT_MODELS:
                continue  # sent as is: the engine dead-letters it (unknown_topic), which a test may expect
            if "raw" in item:
                for k in item:
                    if k not in ("topic", "raw"):
                        err(ip + (k,), f"an input with `raw` takes only `topic`; {k!r} is not sent", key=True)
                continue
            keys(
                ip,
                item,
                INPUT_KEYS + [f for f in EVENT_MODELS[topic].model_fields],
                f"{'an' if topic[0] in 'aeiou' else 'a'} {topic} input",
            )
            if "repeat" in item and not (type(item["repeat"]) is int and item["repeat"] >= 1):
                err(ip + ("repeat",), f"repeat: expected a whole number >= 1, got {item['repeat']!r}")
            if "every" in item:
                duration(ip + ("every",), item["every"])
            if "ts" in item:
                when(ip + ("ts",), item["ts"], has_start)
        for key, model in EXPECT_MODELS.items():
            if key not in t or t[key] is None:
                continue
            exp = t[key]
            if key == "expect_dead_letters" and type(exp) is int:
                if exp < 0:
                    err(tp + (key,), f"{key}: expected a count >= 0 or a list, got {exp}")
                continue
            if not isinstance(exp, list):
                err(
                    tp + (key,),
                    f"{key}: expected a list of partial records"
                    + (" or a count" if key == "expect_dead_letters" else ""),
                )
                continue
            fields = list(model.model_fields)
            for j, w in enumerate(exp):
                wp = tp + (key, j)
                if not isinstance(w, dict):
                    err(wp, f"each of {key} must be a mapping of record fields")
                    continue
                keys(wp, w, fields, f"{key}")
                for k in TIME_KEYS:
                    if k in w:
                        when(wp + (k,), w[k], has_start)
    return errs


def _expand_input(items: list, start: int | None, name: str) -> list[str]:
    """Input items -> replay lines, stably sorted by event time so that
    interleaved `repeat` series read naturally (raw items keep their place)."""
    return [line for line, _ in _expand_input_at(items, start, name)]


def _expand_input_at(items: list, start: int | None, name: str, where_of=None) -> list[tuple[str, Any]]:
    """(replay line, where_of(item index)) for each event, sorted as _expand_input sorts."""
    keyed: list[tuple[int, int, str, Any]] = []
    last = 0

    def add(line: str, at: Any, ts: Any = None) -> None:
        nonlocal last
        if isinstance(ts, int) and not isinstance(ts, bool):
            last = ts
        keyed.append((last, len(keyed), line, at))

    n = 0
    for i, item in enumerate(items or []):
        where = f"test {name!r} input {i + 1}"
        at = where_of(i) if where_of else None
        if not isinstance(item, dict) or "topic" not in item:
            raise TestFileError(f"{where}: each input needs a topic")
        item = dict(item)
        topic = item.pop("topic")
        if "raw" in item:  # the record value exactly as given (malformed input)
            add(json.dumps({"topic": topic, "value": str(item["raw"])}), at)
            continue
        repeat = int(item.pop("repeat", 1))
        every = parse_duration(item.pop("every", "0s"))
        base = _time(item.get("ts"), start, where)
        for r in range(repeat):
            n += 1
            # `{n}` in a value: the repeat's number, so 20 orders get 20 order ids.
            ev = {k: v.replace("{n}", str(r + 1)) if isinstance(v, str) else v for k, v in item.items()}
            if "ts" in ev:
                ev["ts"] = base + r * every if isinstance(base, int) else base
            if topic == OPERATOR:  # an action has no event_id; its `until` is a time like `ts`
                if "until" in ev:
                    ev["until"] = _time(ev["until"], start, where)
            else:
                ev.setdefault("event_id", f"{topic}-{n}")
            if repeat > 1 and "event_id" in item:
                ev["event_id"] = f"{item['event_id']}-{r + 1}"
            ts = ev.get("ts")
            if isinstance(ts, str):
                try:
                    ts = parse_ts(ts)
                except ValueError:
                    ts = None
            add(json.dumps({"topic": topic, "value": ev}), at, ts)
    return [(line, at) for _, _, line, at in sorted(keyed, key=lambda k: (k[0], k[1]))]


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
    ok = len(want) == len(got) and all(_matches(w, g) for w, g in zip(want, got, strict=True))
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
                    problems.append(
                        f"        {k}: expected {json.dumps(w[k])}, got {json.dumps(g.get(k, '<missing>'))}"
                    )
            continue
        if w is not None:
            problems.append(f"    - #{i + 1} expected {json.dumps(w, sort_keys=True)} (missing)")
        if g is not None:
            problems.append(f"    + #{i + 1} unexpected {json.dumps(_brief(g), sort_keys=True)}")
    return problems


def _brief(rec: dict) -> dict:
    keys = (
        "rule_id",
        "status",
        "group",
        "value",
        "ts",
        "action",
        "breaker",
        "scope",
        "reason_code",
        "reason",
        "source_topic",
    )
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


def _file_error_lines(errors: list[RuleError], snippets: bool) -> list[str]:
    from .rulescheck import _snippet

    out = []
    for e in sorted(errors):
        out.append(str(e))
        if snippets:
            out.extend(_snippet(e))
    return out


def run_file(path: Path, verbose: bool = False, snippets: bool = True) -> tuple[int, int, list[str]]:
    """-> (passed, failed, report lines). A file with mistakes runs none of
    its tests: each counts as failed, and every mistake is shown at its
    FILE:LINE:COL, as `rules check` shows a rule's."""
    errors: list[RuleError] = []
    composed = compose_file(path, str(path), errors, kind="rule test files", timestamps=True)
    if composed is not None:
        doc, pos, top = composed
        errors += check_test_file(doc, pos, str(path), top)
    if errors:
        n_tests = (
            len(doc["tests"])
            if composed is not None and isinstance(doc, dict) and isinstance(doc.get("tests"), list)
            else 0
        )
        n = len(errors)
        return (
            0,
            max(1, n_tests),
            _file_error_lines(errors, snippets)
            + [f"FAIL {path}: {n} error{'s' if n != 1 else ''} in the test file; its tests were not run"],
        )
    doc = _plain(doc)
    rule_paths = [(path.parent / p).resolve() for p in doc.get("rule_files", [".."])]
    try:
        ruleset = _load_rule_files(rule_paths)
    except RuleLoadError as exc:
        return 0, max(1, len(doc["tests"])), [f"FAIL {path}: rules failed to load:"] + [f"  {e}" for e in exc.errors]
    passed = failed = 0
    report: list[str] = []
    for i, t in enumerate(doc["tests"]):
        name = t.get("name", f"test {i + 1}")

        def where_of(j: int, i: int = i) -> str:
            line, col = pos[("tests", i, "input", j)][1]
            return f"{path}:{line}:{col}"

        try:
            ok, lines_ = _run_test(t, doc, ruleset, path, name, verbose, where_of, pos, i)
        except (TestFileError, ValueError, TypeError, KeyError) as exc:
            ok, lines_ = False, [f"FAIL {path}: {name}: {exc}"]
        passed += ok
        failed += not ok
        report.extend(lines_)
    return passed, failed, report


def _run_test(
    t: dict,
    doc: dict,
    ruleset: RuleSet,
    path: Path,
    name: str,
    verbose: bool,
    where_of=None,
    pos: dict | None = None,
    index: int = 0,
) -> tuple[bool, list[str]]:
    report: list[str] = []
    start_raw = t.get("start", doc.get("start"))
    start = parse_ts(start_raw) if start_raw is not None else None
    lateness = parse_duration(t.get("allowed_lateness", doc.get("allowed_lateness", "1m")))
    lines = _expand_input_at(t.get("input", []), start, name, where_of)
    only = set(t["rules"]) if "rules" in t else None
    rules = [lr.rule for lr in ruleset.rules if only is None or lr.rule.id in only]
    if only is not None and (missing := only - {r.id for r in rules}):
        known = sorted(lr.rule.id for lr in ruleset.rules)
        out = [f"FAIL {path}: {name}"]
        for j, rid in enumerate(t["rules"]):
            if rid in missing:
                at = pos.get(("tests", index, "rules", j)) if pos else None
                place = f"{path}:{at[1][0]}:{at[1][1]}: " if at else ""
                out.append(f"  {place}unknown rule {rid!r}{did_you_mean(rid, known)}")
        return False, out
    if only is not None:
        rules = with_inputs(rules, [lr.rule for lr in ruleset.rules])
    engine = Engine(rules, EngineConfig(allowed_lateness_ms=lateness))
    alerts: list[dict] = []
    commands: list[dict] = []
    dead: list[dict] = []
    for n, (line, _at) in enumerate(lines, 1):
        for topic, _k, v in engine.process_line(line, n):
            if topic != DEAD_LETTER and only is not None and v["rule_id"] not in only:
                continue  # an input of a listed correlate rule: run, not compared
            (alerts if topic in (ALERTS, SHADOW_ALERTS) else commands if topic == COMMANDS else dead).append(v)
    problems: list[str] = []
    if "expect_dead_letters" in t:
        exp = t["expect_dead_letters"]
        if isinstance(exp, int):
            if exp != len(dead):
                problems.append(f"  dead letters: expected {exp}, got {len(dead)}")
                problems += [f"    + {json.dumps(_brief(d))}" for d in dead]
        else:
            problems += _compare("dead letters", exp or [], dead, start)
    elif dead:
        # An input the engine refused checks nothing: say which and why.
        problems.append(f"  input refused by the engine ({len(dead)}; add expect_dead_letters if that is the point):")
        for d in dead:
            at = lines[d["line"] - 1][1] if isinstance(d.get("line"), int) and 0 < d["line"] <= len(lines) else None
            hint = did_you_mean(d["source_topic"], list(EVENT_MODELS)) if d["reason_code"] == "unknown_topic" else ""
            problems.append(f"    {at + ': ' if at else ''}{d['reason']}{hint} [{d['reason_code']}]")
    if "expect_alerts" in t:
        problems += _compare("alerts", t["expect_alerts"] or [], alerts, start)
    if "expect_commands" in t:
        problems += _compare("breaker commands", t["expect_commands"] or [], commands, start)
    if problems:
        return False, [f"FAIL {path}: {name}"] + problems
    if verbose:
        report.append(f"ok   {path}: {name} ({len(alerts)} alerts, {len(commands)} commands)")
    return True, report


def run(files: list[str], verbose: bool = False, snippets: bool = True) -> int:
    total_p = total_f = 0
    paths: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            found = sorted(p.glob("*.test.yaml"))
            if not found:
                print(f"anomalyd rules test: {f}: no *.test.yaml files in this directory", file=sys.stderr)
                return 2
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        else:
            print(f"anomalyd rules test: {f}: no such test file or directory", file=sys.stderr)
            return 2  # a usage error, as for every command given a missing path
    for p in paths:
        passed, failed, report = run_file(p, verbose, snippets)
        total_p += passed
        total_f += failed
        for line in report:
            print(line)
    print(f"rules test: {total_p} passed, {total_f} failed")
    return 1 if total_f else 0
