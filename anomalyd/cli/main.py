"""`anomalyd` command line. Exit codes: 0 success, 1 a check or test failed, 2 usage error."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .. import __version__
from .common import engine_args as _engine_args
from .common import engine_config as _config
from .common import load_settings, path_exists, port, positive_float, positive_int, timestamp


class _Parser(argparse.ArgumentParser):
    """argparse, with a did-you-mean for a misspelt command or choice."""

    def error(self, message: str):
        import difflib
        import re

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            hint = difflib.get_close_matches(m.group(1), choices, n=1)
            if hint:
                message += f"; did you mean {hint[0]!r}?"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    from ..simulate import ANOMALIES

    ap = _Parser(
        prog="anomalyd",
        description="Rule-based anomaly detection for e-commerce event streams.",
        epilog="Exit codes: 0 success, 1 a check or test failed, 2 usage error (docs/cli.md).",
    )
    ap.add_argument("--version", action="version", version=f"anomalyd {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    r = sub.add_parser(
        "run",
        help="the streaming service (embedded broker unless --bootstrap is given)",
        description="Settings come from ANOMALYD_* environment variables and a .env file in the "
        "current directory (see README); flags override them.",
    )
    r.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: start the embedded broker)"
    )
    r.add_argument("--rules", metavar="DIR", help="rules directory (default rules/)")
    r.add_argument(
        "--group-id",
        metavar="ID",
        help="Kafka consumer group, also the snapshot's name in --state-dir (default anomalyd)",
    )
    r.add_argument("--state-dir", metavar="DIR", help="where snapshots live (default state/)")
    r.add_argument(
        "--metrics-host", metavar="HOST", help="bind address of /metrics, /healthz, /readyz (default 127.0.0.1)"
    )
    r.add_argument(
        "--metrics-port", type=port, metavar="PORT", help="port of /metrics, /healthz, /readyz (default 9108)"
    )
    r.add_argument("--embedded-port", type=port, metavar="PORT", help="port of the embedded broker (default 9092)")
    r.add_argument(
        "--partitions", type=positive_int, metavar="N", help="partitions of topics anomalyd creates (default 4)"
    )

    tp = sub.add_parser("topics", help="Kafka topics", description="Kafka topics.")
    tsub = tp.add_subparsers(dest="topics_cmd", metavar="SUBCOMMAND")
    tc = tsub.add_parser(
        "create",
        help="create every input and output topic (idempotent)",
        description="Topic names and security settings come from ANOMALYD_* variables, as for `run`.",
    )
    tc.add_argument("--bootstrap", metavar="HOST:PORT", help="default: ANOMALYD_BOOTSTRAP_SERVERS")
    tc.add_argument("--partitions", type=positive_int, metavar="N", help="default: ANOMALYD_PARTITIONS (4)")
    tc.add_argument(
        "--replication-factor",
        type=positive_int,
        default=1,
        metavar="N",
        help="copies of each partition (default 1; at most the number of brokers)",
    )
    tc.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="topic config for every topic, e.g. retention.ms=604800000 (repeatable)",
    )

    p = sub.add_parser(
        "replay",
        help="run the engine over a JSONL file, no broker",
        description="Run the engine over a JSONL file, no broker; alerts, breaker commands and "
        "dead letters are written to stdout as JSONL.",
    )
    p.add_argument("events", metavar="EVENTS", help='JSONL file ({"topic", "value"} or kcat -J lines); - for stdin')
    p.add_argument("--rules", required=True, metavar="DIR", help="rules directory (or one rules file)")
    p.add_argument("--summary", action="store_true", help="print a one-line summary on stderr")
    _engine_args(p)

    rules = sub.add_parser(
        "rules", help="check, list and unit-test rules", description="Check, list and unit-test rules."
    )
    rsub = rules.add_subparsers(dest="rules_cmd", metavar="SUBCOMMAND")
    c = rsub.add_parser(
        "check",
        help="validate a rules directory",
        description="Validate a rules directory: every error as FILE:LINE:COL: message; exit 1 if any.",
    )
    c.add_argument("dir", metavar="DIR", help="rules directory (or one rules file)")
    c.add_argument("--no-snippet", action="store_true", help="only the FILE:LINE:COL lines")
    t = rsub.add_parser(
        "test", help="run rule unit tests", description="Run rule unit tests (README: Rule unit tests)."
    )
    t.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help="test files, or directories of *.test.yaml")
    t.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")
    t.add_argument("--no-snippet", action="store_true", help="only the FILE:LINE:COL lines for mistakes in test files")
    ls = rsub.add_parser(
        "list", help="list the rules of a directory", description="A table of the rules of a directory."
    )
    ls.add_argument("dir", metavar="DIR", help="rules directory (or one rules file)")

    s = sub.add_parser(
        "simulate",
        help="write a realistic JSONL stream with labelled anomalies",
        description="A realistic, seeded stream of all four sources with labelled injected anomalies "
        '("label" on the envelope; replay ignores it).',
    )
    s.add_argument("--out", "-o", default="-", metavar="FILE", help="output file (default stdout)")
    s.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same stream (default 7)")
    s.add_argument(
        "--start",
        default="2026-06-18T00:00:00+08:00",
        type=timestamp,
        metavar="TIME",
        help="event time of the first event, RFC 3339 with an offset or epoch ms (default 2026-06-18T00:00:00+08:00)",
    )
    s.add_argument(
        "--minutes", type=positive_float, default=60, metavar="M", help="span of event time, > 0 (default 60)"
    )
    s.add_argument(
        "--events", type=positive_int, default=None, metavar="N", help="number of events (overrides --minutes)"
    )
    s.add_argument(
        "--rate",
        type=positive_float,
        default=20.0,
        metavar="R",
        help="events per second of event time, > 0 (default 20)",
    )
    s.add_argument(
        "--skus", type=positive_int, default=500, metavar="N", help="distinct SKUs in the catalogue (default 500)"
    )
    s.add_argument("--merchants", type=positive_int, default=20, metavar="N", help="distinct merchants (default 20)")
    s.add_argument(
        "--anomalies",
        default=None,
        metavar="KINDS",
        help=f"comma-separated kinds to inject, each once an hour from minute 10: {', '.join(ANOMALIES)} "
        "(default all; 'none' for none)",
    )
    s.add_argument(
        "--to-kafka",
        nargs="?",
        const="127.0.0.1:9092",
        default=None,
        metavar="BOOTSTRAP",
        help="produce to Kafka instead of writing a file (default 127.0.0.1:9092; "
        "topic names and security from ANOMALYD_*, as for `run`)",
    )
    s.add_argument(
        "--live",
        action="store_true",
        help="with --to-kafka: live traffic, --rate events a second of wall clock from now (ts = when sent), "
        "in 250 ms batches per partition (what the embedded broker copes with best); Ctrl-C stops",
    )

    from .operate import add_parsers as add_operate

    operate = add_operate(sub)
    from .backtest import add_parser as add_backtest

    bt = add_backtest(sub)

    sc = sub.add_parser(
        "schemas",
        help="write JSON Schema files generated from the models",
        description="Write (or with --check, compare) the JSON Schema files generated from the models.",
    )
    sc.add_argument(
        "dir", nargs="?", default="schemas", metavar="DIR", help="where the schema files live (default schemas)"
    )
    sc.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    ap.subcommands = {  # type: ignore[attr-defined]
        "run": r,
        "topics": tp,
        "topics create": tc,
        "replay": p,
        "rules": rules,
        "rules check": c,
        "rules test": t,
        "rules list": ls,
        "simulate": s,
        "backtest": bt,
        "schemas": sc,
        **operate,
    }
    return ap


def _kafka_ok(cmd: str, bootstrap: str, s) -> bool:
    """Connect once with the security settings: a wrong password or
    certificate is one clear line (and exit 1), not a client's retries."""
    import asyncio

    from ..kafkatools.connect import KafkaSetupError, check_kafka

    try:
        asyncio.run(check_kafka(bootstrap, s.kafka_security()))
        return True
    except KafkaSetupError as exc:
        print(f"anomalyd {cmd}: {exc}", file=sys.stderr)
        return False


def _usage(parser: argparse.ArgumentParser) -> int:
    """A command given without its subcommand: its help on stderr, exit 2."""
    parser.print_help(sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    subs = ap.subcommands  # type: ignore[attr-defined]
    if a.cmd == "run":
        from ..surfaces.settings import env_file_lines
        from .run import run

        if a.rules is not None and not path_exists("run", a.rules, "rules directory", "--rules"):
            return 2
        settings = load_settings(
            "run",
            bootstrap_servers=a.bootstrap,
            rules_dir=a.rules,
            group_id=a.group_id,
            state_dir=a.state_dir,
            metrics_host=a.metrics_host,
            metrics_port=a.metrics_port,
            embedded_port=a.embedded_port,
            partitions=a.partitions,
        )
        if settings is None:
            return 2
        if a.rules is None and not settings.rules_dir.exists():
            given = "ANOMALYD_RULES_DIR" in {k.upper() for k in os.environ} or "ANOMALYD_RULES_DIR" in env_file_lines()
            print(
                f"anomalyd run: {settings.rules_dir}: no such rules directory"
                + (" (ANOMALYD_RULES_DIR)" if given else " (the default: give --rules DIR or ANOMALYD_RULES_DIR)"),
                file=sys.stderr,
            )
            return 2
        return run(settings)
    if a.cmd in ("breakers", "alerts"):
        from .operate import run as run_operate

        return run_operate(a, subs)
    if a.cmd == "backtest":
        from .backtest import run as run_backtest

        return run_backtest(a)
    if a.cmd == "topics":
        if a.topics_cmd != "create":
            return _usage(subs["topics"])
        tc = subs["topics create"]
        bad = [c for c in a.config if "=" not in c or not c.split("=", 1)[0]]
        if bad:
            tc.error(f"--config takes KEY=VALUE, got {', '.join(map(repr, bad))}")
        s = load_settings("topics create", bootstrap_servers=a.bootstrap, partitions=a.partitions)
        if s is None:
            return 2
        if not s.bootstrap_servers:
            tc.error("needs --bootstrap or ANOMALYD_BOOTSTRAP_SERVERS")
        from ..kafkatools.admin import ensure_topics, topic_partitions

        if not _kafka_ok("topics create", s.bootstrap_servers, s):
            return 1
        names = list(s.input_topics()) + list(s.output_topics().values())
        configs = dict(c.split("=", 1) for c in a.config)
        security = s.kafka_security()
        created = ensure_topics(
            s.bootstrap_servers,
            {n: s.partitions for n in names},
            {n: configs for n in names} if configs else None,
            security=security,
            replication_factor=a.replication_factor,
        )
        have = topic_partitions(s.bootstrap_servers, names, security=security)
        for n in names:
            print(f"{n}: {have.get(n, '?')} partitions{' (created)' if n in created else ''}")
        return 0
    if a.cmd == "replay":
        from .replay import run_replay

        if not (
            path_exists("replay", a.rules, "rules directory", "--rules") and path_exists("replay", a.events, "file")
        ):
            return 2
        if os.path.isdir(a.events):
            print(f"anomalyd replay: {a.events}: is a directory, not a JSONL file", file=sys.stderr)
            return 2
        return run_replay(a.events, a.rules, _config(a), a.summary, sys.stdout)
    if a.cmd == "rules":
        if a.rules_cmd in ("check", "list") and not path_exists(f"rules {a.rules_cmd}", a.dir, "rules directory"):
            return 2
        if a.rules_cmd == "check":
            from .rulescheck import check

            return check(a.dir, snippets=not a.no_snippet)
        if a.rules_cmd == "list":
            from .rulescheck import list_rules

            return list_rules(a.dir)
        if a.rules_cmd == "test":
            from .ruletest import run as run_tests

            return run_tests(a.files, a.verbose, snippets=not a.no_snippet)
        return _usage(subs["rules"])
    if a.cmd == "simulate":
        from ..simulate import ANOMALIES, generate, write

        kinds = None
        if a.anomalies:
            kinds = [] if a.anomalies == "none" else [k.strip() for k in a.anomalies.split(",") if k.strip()]
            bad = [k for k in kinds if k not in ANOMALIES]
            if bad:
                import difflib

                hints = [difflib.get_close_matches(k, ANOMALIES, n=1) for k in bad]
                guess = "; ".join(f"did you mean {h[0]!r} for {k!r}?" for k, h in zip(bad, hints, strict=True) if h)
                print(
                    f"anomalyd simulate: --anomalies: unknown kind{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}"
                    f"{'; ' + guess if guess else ''} (kinds: {', '.join(ANOMALIES)}, or none)",
                    file=sys.stderr,
                )
                return 2
        if a.live and not a.to_kafka:
            print("anomalyd simulate: --live sends to Kafka: give --to-kafka too", file=sys.stderr)
            return 2
        kw = dict(
            seed=a.seed,
            start=int(time.time() * 1000) if a.live else a.start if not a.start.isdigit() else int(a.start),
            minutes=a.minutes,
            rate=a.rate,
            skus=a.skus,
            merchants=a.merchants,
            events=a.events,
            anomalies=kinds,
        )
        if a.to_kafka:
            from ..kafkatools.envelopes import produce_envelopes

            s = load_settings("simulate")  # topic names and security, as for `run`
            if s is None:
                return 2
            if not _kafka_ok("simulate", a.to_kafka, s):
                return 1
            topics = {source: topic for topic, source in s.input_topics().items()}
            if a.live:
                from ..kafkatools.envelopes import produce_envelopes_live

                try:
                    n = produce_envelopes_live(a.to_kafka, generate(**kw), topics, security=s.kafka_security())
                except KeyboardInterrupt:
                    print("simulate: stopped", file=sys.stderr)
                    return 130
            else:
                n = produce_envelopes(a.to_kafka, generate(**kw), topics, security=s.kafka_security())
            print(f"simulate: produced {n} events to {a.to_kafka}", file=sys.stderr)
            return 0
        if a.out == "-":
            n = write(sys.stdout, **kw)
        else:
            try:
                f = open(a.out, "w")
            except OSError as exc:
                print(f"anomalyd simulate: {a.out}: {exc.strerror}", file=sys.stderr)
                return 2
            with f:
                n = write(f, **kw)
        print(f"simulate: wrote {n} events", file=sys.stderr)
        return 0
    if a.cmd == "schemas":
        from ..schemas import write as write_schemas

        if a.check and not path_exists("schemas", a.dir, "directory"):
            return 2
        try:
            stale = write_schemas(Path(a.dir), check=a.check)
        except OSError as exc:
            print(f"anomalyd schemas: {exc.filename or a.dir}: {exc.strerror}", file=sys.stderr)
            return 2
        if a.check and stale:
            print(f"stale schemas in {a.dir}: {', '.join(stale)} (run: anomalyd schemas {a.dir})")
            return 1
        print(f"schemas: {'up to date' if not stale else 'wrote ' + ', '.join(stale)}")
        return 0
    ap.print_help(sys.stderr)
    return 2


def entry() -> int:
    """Console-script entry: a closed pipe (`anomalyd simulate | head`) ends quietly."""
    try:
        return main()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(entry())
