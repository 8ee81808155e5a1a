"""`anomalyd backtest EVENTS... --rules DIR [--baseline DIR] [--json] [--html FILE]`.

Wire it into the main parser with `add_parser(subparsers)` and dispatch to
`run(args)`. Exit codes: 0 done, 1 a rules directory failed to load (its
`FILE:LINE:COL: message` errors on stderr), 2 usage (bad arguments, an
unreadable input file, an unwritable report).
"""

from __future__ import annotations

import argparse
import sys

from .common import duration, engine_args, engine_config, load_settings, path_exists


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `backtest` on an `add_subparsers()` object; returns its parser."""
    p = subparsers.add_parser(
        "backtest",
        help="run rules (and a baseline) over recorded events and report per rule",
        description="Replay recorded events through a rules directory, optionally against a baseline "
        "directory, and report per rule: alerts fired and resolved, groups, alerts per hour, "
        "time firing, breaker opens, noisiest groups; the episodes only one set raises; and "
        "precision/recall when the input carries simulator labels.",
    )
    p.add_argument(
        "events",
        nargs="+",
        metavar="EVENTS",
        help="JSONL replay files or kcat -J dumps ('-' for stdin); several are merged by event time. "
        "kafka://HOST:PORT[?since=TIME] reads the input topics (names from ANOMALYD_TOPIC_*) "
        "from records timestamped at or after TIME (RFC 3339 or epoch ms)",
    )
    p.add_argument("--rules", required=True, metavar="DIR", help="the rules to evaluate")
    p.add_argument("--baseline", metavar="DIR", help="rules to compare against (e.g. the deployed ones)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout instead of a table")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with timelines")
    p.add_argument(
        "--label-gap",
        type=duration,
        default=600_000,
        metavar="DUR",
        help="labelled events of one kind further apart than this are separate anomalies (default 10m)",
    )
    engine_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..engine.rules.loader import RuleLoadError, load_rules

    if sum(1 for e in args.events if e == "-") > 1:
        print("anomalyd backtest: '-' (stdin) can be given once", file=sys.stderr)
        return 2

    for name in ("rules", "baseline"):
        d = getattr(args, name, None)
        if d is not None and not path_exists("backtest", d, "rules directory", f"--{name}"):
            return 2
    for e in args.events:
        if not e.startswith("kafka://") and not path_exists("backtest", e, "file"):
            return 2
    sets = {}
    failed = False
    for name in ("rules", "baseline"):
        d = getattr(args, name, None)
        if d is None:
            continue
        try:
            sets[name] = load_rules(d)
        except RuleLoadError as exc:
            for e in exc.errors:
                print(e, file=sys.stderr)
            failed = True
    if failed:
        return 1
    import tempfile

    with tempfile.TemporaryDirectory(prefix="anomalyd-backtest-") as tmp:
        from ..kafkatools.connect import KafkaSetupError

        try:
            args.events = _expand_kafka(args.events, tmp)
        except (ValueError, OSError) as exc:
            print(f"anomalyd backtest: {exc}", file=sys.stderr)
            return 2
        except KafkaSetupError as exc:
            print(f"anomalyd backtest: {exc}", file=sys.stderr)
            return 1
        return _run(args, sets)


def _expand_kafka(events: list[str], tmp: str) -> list[str]:
    """`kafka://HOST:PORT[?since=TIME]` -> one JSONL file per input partition
    (topic names and security from ANOMALYD_*), which the backtest merges by
    event time. TIME is RFC 3339 or epoch ms, compared with record timestamps."""
    import json
    from pathlib import Path
    from urllib.parse import parse_qs, urlparse

    out: list[str] = []
    for e in events:
        if not e.startswith("kafka://"):
            out.append(e)
            continue
        import asyncio

        from ..engine.timeutil import parse_ts
        from ..kafkatools.admin import consume_all
        from ..kafkatools.connect import check_kafka

        u = urlparse(e)
        since = parse_qs(u.query).get("since", [None])[0]
        since_ms = (int(since) if since.isdigit() else parse_ts(since)) if since else None

        s = load_settings("backtest")  # topic names and security, as for `run`
        if s is None:
            raise ValueError("fix the settings above")
        names = s.input_topics()
        asyncio.run(check_kafka(u.netloc, s.kafka_security()))  # a bad password or certificate: one line
        recs = consume_all(u.netloc, list(names), timeout_s=600, since_ms=since_ms, security=s.kafka_security())
        files: dict = {}
        for topic, part, offset, key, value in recs:
            f = files.get((topic, part))
            if f is None:
                f = files[(topic, part)] = open(Path(tmp) / f"{topic}-{part}.jsonl", "w", encoding="utf-8")
            f.write(
                json.dumps(
                    {
                        "topic": names[topic],
                        "partition": part,
                        "offset": offset,
                        "key": key,
                        "payload": value.decode("utf-8", "replace") if value is not None else "",
                    }
                )
                + "\n"
            )
        for f in files.values():
            f.close()
        out.extend(sorted(f.name for f in files.values()))
        print(f"backtest: read {len(recs)} records from {u.netloc} ({len(files)} partitions)", file=sys.stderr)
    return out


def _run(args: argparse.Namespace, sets: dict) -> int:
    from ..backtest.core import backtest  # on use: the parser is built for every command

    config = engine_config(args)
    try:
        bt = backtest(args.events, sets["rules"], sets.get("baseline"), config=config, label_gap_ms=args.label_gap)
    except OSError as exc:
        print(f"anomalyd backtest: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    bt.current.source = args.rules
    if bt.baseline is not None:
        bt.baseline.source = args.baseline
    if args.html:
        from ..backtest.report_html import render as render_html

        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(render_html(bt))
        except OSError as exc:
            print(f"anomalyd backtest: {args.html}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.json:
        sys.stdout.write(bt.to_json() + "\n")
    else:
        from ..backtest.text import render as render_text

        render_text(bt, sys.stdout)
        if args.html:
            print(f"report: {args.html}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m anomalyd.backtest`), until the main CLI wires it in."""
    ap = argparse.ArgumentParser(prog="anomalyd")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    add_parser(sub)
    return run(ap.parse_args(argv))
