"""`anomalyd` command line. Exit codes: 0 success, 1 a check or test failed, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from .common import engine_args as _engine_args
from .common import engine_config as _config


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anomalyd", description="Rule-based anomaly detection for e-commerce event streams.")
    ap.add_argument("--version", action="version", version=f"anomalyd {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    r = sub.add_parser("run", help="the streaming service (embedded broker unless --bootstrap is given)",
                       description="Settings come from ANOMALYD_* environment variables (see README); flags override them.")
    r.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: start the embedded broker)")
    r.add_argument("--rules", metavar="DIR", help="rules directory (default rules/)")
    r.add_argument("--group-id")
    r.add_argument("--state-dir", metavar="DIR", help="where snapshots live (default state/)")
    r.add_argument("--metrics-host")
    r.add_argument("--metrics-port", type=int)
    r.add_argument("--embedded-port", type=int, help="port of the embedded broker (default 9092)")
    r.add_argument("--partitions", type=int, help="partitions of topics anomalyd creates (default 4)")

    tp = sub.add_parser("topics", help="Kafka topics")
    tsub = tp.add_subparsers(dest="topics_cmd", metavar="SUBCOMMAND")
    tc = tsub.add_parser("create", help="create every input and output topic (idempotent)",
                         description="Topic names and security settings come from ANOMALYD_* variables, as for `run`.")
    tc.add_argument("--bootstrap", metavar="HOST:PORT", help="default: ANOMALYD_BOOTSTRAP_SERVERS")
    tc.add_argument("--partitions", type=int, help="default: ANOMALYD_PARTITIONS (4)")
    tc.add_argument("--replication-factor", type=int, default=1)
    tc.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="topic config for every topic, e.g. retention.ms=604800000 (repeatable)")

    p = sub.add_parser("replay", help="run the engine over a JSONL file, no broker")
    p.add_argument("events", help="JSONL file ({\"topic\", \"value\"} or kcat -J lines); - for stdin")
    p.add_argument("--rules", required=True, metavar="DIR")
    p.add_argument("--summary", action="store_true", help="print a one-line summary on stderr")
    _engine_args(p)

    rules = sub.add_parser("rules", help="check, list and unit-test rules")
    rsub = rules.add_subparsers(dest="rules_cmd", metavar="SUBCOMMAND")
    c = rsub.add_parser("check", help="validate a rules directory")
    c.add_argument("dir")
    c.add_argument("--no-snippet", action="store_true", help="only the FILE:LINE:COL lines")
    t = rsub.add_parser("test", help="run rule unit tests")
    t.add_argument("files", nargs="+", help="test files, or directories of *.test.yaml")
    t.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")
    t.add_argument("--no-snippet", action="store_true", help="only the FILE:LINE:COL lines for mistakes in test files")
    ls = rsub.add_parser("list", help="list the rules of a directory")
    ls.add_argument("dir")

    s = sub.add_parser("simulate", help="write a realistic JSONL stream with labelled anomalies")
    s.add_argument("--out", "-o", default="-", help="output file (default stdout)")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--start", default="2026-06-18T00:00:00+08:00", help="event time of the first event")
    s.add_argument("--minutes", type=float, default=60, help="span of event time (default 60)")
    s.add_argument("--events", type=int, default=None, help="number of events (overrides --minutes)")
    s.add_argument("--rate", type=float, default=20.0, help="events per second of event time (default 20)")
    s.add_argument("--skus", type=int, default=500)
    s.add_argument("--merchants", type=int, default=20)
    s.add_argument("--anomalies", default=None, help="comma-separated kinds to inject (default all; 'none' for none)")
    s.add_argument("--to-kafka", nargs="?", const="127.0.0.1:9092", default=None, metavar="BOOTSTRAP",
                   help="produce to Kafka instead of writing a file (default 127.0.0.1:9092; "
                        "topic names and security from ANOMALYD_*, as for `run`)")

    from ..backtest.cli import add_parser as add_backtest

    add_backtest(sub)

    sc = sub.add_parser("schemas", help="write JSON Schema files generated from the models")
    sc.add_argument("dir", nargs="?", default="schemas")
    sc.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    return ap


def _settings(cmd: str, **overrides):
    """Settings from ANOMALYD_* (and flags); None after printing each bad
    setting by its variable name (the caller exits 2)."""
    from pydantic import ValidationError

    from ..surfaces.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            name = "_".join(map(str, e["loc"])).upper()
            where = f"ANOMALYD_{name}: " if name else ""  # cross-field checks name their variables
            print(f"anomalyd {cmd}: {where}{e['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return None


def _kafka_ok(cmd: str, bootstrap: str, s) -> bool:
    """Connect once with the security settings: a wrong password or
    certificate is one clear line (and exit 1), not a client's retries."""
    import asyncio

    from ..io.connect import KafkaSetupError, check_kafka

    try:
        asyncio.run(check_kafka(bootstrap, s.kafka_security()))
        return True
    except KafkaSetupError as exc:
        print(f"anomalyd {cmd}: {exc}", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.cmd == "run":
        from .run import run

        settings = _settings("run", bootstrap_servers=a.bootstrap, rules_dir=a.rules, group_id=a.group_id,
                             state_dir=a.state_dir, metrics_host=a.metrics_host, metrics_port=a.metrics_port,
                             embedded_port=a.embedded_port, partitions=a.partitions)
        return 2 if settings is None else run(settings)
    if a.cmd == "backtest":
        from ..backtest.cli import run as run_backtest

        return run_backtest(a)
    if a.cmd == "topics":
        if a.topics_cmd != "create":
            ap.parse_args(["topics", "--help"])
            return 2
        s = _settings("topics create", bootstrap_servers=a.bootstrap, partitions=a.partitions)
        if s is None:
            return 2
        if not s.bootstrap_servers:
            ap.error("topics create needs --bootstrap or ANOMALYD_BOOTSTRAP_SERVERS")
        bad = [c for c in a.config if "=" not in c]
        if bad:
            ap.error(f"--config takes KEY=VALUE, got {bad}")
        from ..io.admin import ensure_topics, topic_partitions

        if not _kafka_ok("topics create", s.bootstrap_servers, s):
            return 1
        names = list(s.input_topics()) + list(s.output_topics().values())
        configs = dict(c.split("=", 1) for c in a.config)
        security = s.kafka_security()
        created = ensure_topics(s.bootstrap_servers, {n: s.partitions for n in names},
                                {n: configs for n in names} if configs else None, security=security,
                                replication_factor=a.replication_factor)
        have = topic_partitions(s.bootstrap_servers, names, security=security)
        for n in names:
            print(f"{n}: {have.get(n, '?')} partitions{' (created)' if n in created else ''}")
        return 0
    if a.cmd == "replay":
        from .replay import run_replay

        return run_replay(a.events, a.rules, _config(a), a.summary, sys.stdout)
    if a.cmd == "rules":
        if a.rules_cmd == "check":
            from .rulescheck import check

            return check(a.dir, snippets=not a.no_snippet)
        if a.rules_cmd == "list":
            from .rulescheck import list_rules

            return list_rules(a.dir)
        if a.rules_cmd == "test":
            from .ruletest import run

            return run(a.files, a.verbose, snippets=not a.no_snippet)
        ap.parse_args(["rules", "--help"])
        return 2
    if a.cmd == "simulate":
        from ..simulate import ANOMALIES, generate, write

        kinds = None
        if a.anomalies:
            kinds = [] if a.anomalies == "none" else a.anomalies.split(",")
            bad = [k for k in kinds if k not in ANOMALIES]
            if bad:
                ap.error(f"unknown anomaly kinds {bad}; known: {', '.join(ANOMALIES)}")
        kw = dict(seed=a.seed, start=a.start, minutes=a.minutes, rate=a.rate, skus=a.skus,
                  merchants=a.merchants, events=a.events, anomalies=kinds)
        if a.to_kafka:
            from ..io.tools import produce_envelopes

            s = _settings("simulate")  # topic names and security, as for `run`
            if s is None:
                return 2
            if not _kafka_ok("simulate", a.to_kafka, s):
                return 1
            names = {source: topic for topic, source in s.input_topics().items()}
            n = produce_envelopes(a.to_kafka, generate(**kw), names, security=s.kafka_security())
            print(f"simulate: produced {n} events to {a.to_kafka}", file=sys.stderr)
            return 0
        if a.out == "-":
            n = write(sys.stdout, **kw)
        else:
            with open(a.out, "w") as f:
                n = write(f, **kw)
        print(f"simulate: wrote {n} events", file=sys.stderr)
        return 0
    if a.cmd == "schemas":
        from ..schemas import write as write_schemas

        stale = write_schemas(Path(a.dir), check=a.check)
        if a.check and stale:
            print(f"stale schemas in {a.dir}: {', '.join(stale)} (run: anomalyd schemas {a.dir})")
            return 1
        print(f"schemas: {'up to date' if not stale else 'wrote ' + ', '.join(stale)}")
        return 0
    ap.print_help()
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
