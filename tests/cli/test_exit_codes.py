"""Every command's exit codes, as docs/cli.md lists them: 0 ok, 1 a check
or test failed, 2 a usage error (a bad flag or value, a missing path given
on the command line, a bad or unknown setting). Run in-process for speed;
the exit 1 of a refused Kafka connection is tested in tests/io/test_security.py."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from anomalyd.cli.main import main

REPO = Path(__file__).resolve().parents[2]
RULES = str(REPO / "rules")
BROKEN = (
    "rules:\n  - id: x\n    source: inventory\n    type: threshold\n    feild: available\n    op: '<'\n    value: 0\n"
)
FAILING_TEST = f"""rule_files: [{RULES}]
start: 2026-06-18T00:00:00+08:00
tests:
  - rules: [negative-stock]
    input: [{{topic: inventory, ts: "+1m", sku: S, available: -4}}]
    expect_alerts: []
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            rc = exc.code if isinstance(exc.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def w(tmp_path, monkeypatch):
    """A scratch directory (the current one, so no .env of the checkout is read)
    with an event file, a broken rules dir and a failing rule test."""
    monkeypatch.chdir(tmp_path)

    def would_start(settings):  # a usage error must stop before the service starts (and never hang a test)
        raise AssertionError("the service would start")

    monkeypatch.setattr("anomalyd.cli.run.run", would_start)
    for k in list(__import__("os").environ):
        if k.startswith("ANOMALYD_"):
            monkeypatch.delenv(k)
    (tmp_path / "ev.jsonl").write_text(
        '{"topic": "inventory", "value": {"event_id": "e", "ts": 1781712000000, "sku": "S", "available": -1}}\n'
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "r.yaml").write_text(BROKEN)
    (tmp_path / "fail.test.yaml").write_text(FAILING_TEST)
    (tmp_path / "empty").mkdir()
    return tmp_path


CASES = [
    # (command line, exit code)
    ("--help", 0),
    ("--version", 0),
    ("", 2),
    ("frobnicate", 2),
    ("replay ev.jsonl --rules RULES", 0),
    ("replay ev.jsonl --rules broken", 1),
    ("replay missing.jsonl --rules RULES", 2),
    ("replay ev.jsonl --rules missing", 2),
    ("replay ev.jsonl", 2),
    ("replay ev.jsonl --rules RULES --max-groups 0", 2),
    ("replay ev.jsonl --rules RULES --max-groups -1", 2),
    ("replay ev.jsonl --rules RULES --allowed-lateness soon", 2),
    ("replay empty --rules RULES", 2),
    ("rules", 2),
    ("rules frobnicate", 2),
    ("rules check RULES", 0),
    ("rules check broken", 1),
    ("rules check missing", 2),
    ("rules check empty", 1),
    ("rules list RULES", 0),
    ("rules list broken", 1),
    ("rules list missing", 2),
    ("rules test RULES/tests", 0),
    ("rules test fail.test.yaml", 1),
    ("rules test missing.test.yaml", 2),
    ("rules test empty", 2),
    ("rules test broken/r.yaml", 1),
    ("backtest ev.jsonl --rules RULES", 0),
    ("backtest ev.jsonl --rules broken", 1),
    ("backtest ev.jsonl --rules RULES --baseline broken", 1),
    ("backtest missing.jsonl --rules RULES", 2),
    ("backtest ev.jsonl --rules missing", 2),
    ("backtest ev.jsonl --rules RULES --baseline missing", 2),
    ("backtest - - --rules RULES", 2),
    ("backtest ev.jsonl --rules RULES --html no/dir/r.html", 2),
    ("backtest ev.jsonl --rules RULES --max-groups 0", 2),
    ("simulate --minutes 1 -o sim.jsonl", 0),
    ("simulate --minutes -5", 2),
    ("simulate --minutes 0", 2),
    ("simulate --events 0", 2),
    ("simulate --rate 0", 2),
    ("simulate --skus 0", 2),
    ("simulate --merchants 0", 2),
    ("simulate --start yesterday", 2),
    ("simulate --anomalies bogus", 2),
    ("simulate --live --minutes 1", 2),
    ("simulate --minutes 1 -o no/dir/x", 2),
    ("schemas schemas-out", 0),
    ("schemas RULES/../schemas --check", 0),
    ("schemas empty --check", 1),
    ("schemas missing --check", 2),
    ("topics", 2),
    ("topics create", 2),
    ("topics create --bootstrap h:1 --config x", 2),
    ("topics create --bootstrap h:1 --partitions 0", 2),
    ("topics create --bootstrap h:1 --replication-factor 0", 2),
    ("run --rules missing", 2),
    ("run --metrics-port 70000", 2),
    ("run --partitions 0", 2),
    ("run", 2),
]


@pytest.mark.parametrize("argv,code", CASES, ids=[c[0] or "(nothing)" for c in CASES])
def test_exit_code(w, argv, code):
    rc, out, err = run(*[a.replace("RULES", RULES) for a in argv.split()])
    assert rc == code, (out, err)
    if code == 2 and argv not in ("", "rules", "topics"):
        assert "Traceback" not in err and err.strip(), "a usage error says what is wrong"


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"ANOMALYD_MAX_GROUPS": "-1"}, "ANOMALYD_MAX_GROUPS: must be a whole number >= 1, got -1"),
        ({"ANOMALYD_MAX_GROUPS": "0"}, "ANOMALYD_MAX_GROUPS: must be a whole number >= 1, got 0"),
        ({"ANOMALYD_PARTITIONS": "0"}, "ANOMALYD_PARTITIONS: must be a whole number >= 1, got 0"),
        ({"ANOMALYD_SHARDS": "-2"}, "ANOMALYD_SHARDS: must be a whole number >= 0"),
        ({"ANOMALYD_METRICS_PORT": "99999"}, "ANOMALYD_METRICS_PORT: must be a port number 0..65535, got 99999"),
        ({"ANOMALYD_CHECKPOINT_INTERVAL": "0s"}, "ANOMALYD_CHECKPOINT_INTERVAL: must be longer than 0, got '0s'"),
        (
            {"ANOMALYD_SNAPSHOT_INTERVAL": "0s"},
            "ANOMALYD_SNAPSHOT_INTERVAL: must be longer than 0, got '0s'",
        ),  # deprecated name
        ({"ANOMALYD_RELOAD_INTERVAL": "0ms"}, "ANOMALYD_RELOAD_INTERVAL: must be longer than 0"),
        (
            {"ANOMALYD_SESSION_TIMEOUT_MS": "abc"},
            "ANOMALYD_SESSION_TIMEOUT_MS: Input should be a valid integer, unable to parse string as an integer, got 'abc'",
        ),
        (
            {"ANOMALYD_MAX_GROUP": "10"},
            "ANOMALYD_MAX_GROUP (environment): unknown setting; did you mean ANOMALYD_MAX_GROUPS?",
        ),
        ({"ANOMALYD_RULES_DIR": "nowhere"}, "anomalyd run: nowhere: no such rules directory (ANOMALYD_RULES_DIR)"),
    ],
)
def test_bad_and_unknown_settings_are_usage_errors(w, monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc, _, err = run("run", *([] if "RULES_DIR" in str(env) else ["--rules", RULES]))
    assert rc == 2 and f"{expected}" in err, err


def test_env_file_typos_and_bad_values_name_their_line(w):
    (w / ".env").write_text("OTHER_TOOL=1\nANOMALYD_SNAPSHOT_INTERVL=2s\n  export ANOMALYD_MAX_GROUPS=0\n")
    rc, _, err = run("run", "--rules", RULES)
    assert rc == 2
    assert (
        "anomalyd run: .env:2:1: unknown setting ANOMALYD_SNAPSHOT_INTERVL; did you mean ANOMALYD_CHECKPOINT_INTERVAL?"
        in err
    )
    assert "anomalyd run: .env:3:10: ANOMALYD_MAX_GROUPS: must be a whole number >= 1, got 0" in err
    assert "OTHER_TOOL" not in err  # a .env shared with other tools: only ANOMALYD_* names are ours


def test_kubernetes_service_links_are_not_unknown_settings(w, monkeypatch):
    from anomalyd.surfaces.settings import unknown_settings

    env = {
        "ANOMALYD_PORT": "tcp://10.0.0.1:9108",
        "ANOMALYD_SERVICE_HOST": "10.0.0.1",
        "ANOMALYD_SERVICE_PORT": "9108",
        "ANOMALYD_SERVICE_PORT_METRICS": "9108",
        "ANOMALYD_PORT_9108_TCP": "tcp://10.0.0.1:9108",
        "ANOMALYD_PORT_9108_TCP_ADDR": "10.0.0.1",
        "ANOMALYD_PORT_9108_TCP_PROTO": "tcp",
        "ANOMALYD_PORT_9108_TCP_PORT": "9108",
        "ANOMALYD_GROUP_ID": "g",
    }
    assert unknown_settings(env) == []
    assert unknown_settings({"ANOMALYD_GROUPID": "g"}) == [
        "ANOMALYD_GROUPID (environment): unknown setting; did you mean ANOMALYD_GROUP_ID?"
    ]


def test_simulate_bad_kind_is_one_line_of_that_subcommand(w):
    rc, _, err = run("simulate", "--anomalies", "oversel,bogus")
    assert rc == 2
    assert err.count("\n") == 1, err  # one line, not a usage
    assert err.startswith(
        "anomalyd simulate: --anomalies: unknown kinds 'oversel', 'bogus'; did you mean 'oversell' "
        "for 'oversel'? (kinds: oversell, price-drop,"
    )


def test_simulate_help_lists_the_anomaly_kinds_and_every_flag_has_help():
    from anomalyd.cli.main import build_parser
    from anomalyd.simulate import ANOMALIES

    ap = build_parser()
    (kinds,) = [x.help for x in ap.subcommands["simulate"]._actions if x.dest == "anomalies"]
    assert all(k in kinds for k in ANOMALIES)
    for name, parser in ap.subcommands.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):  # its subcommands each have help
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_docs_cli_md_lists_every_command(w):
    doc = (REPO / "docs" / "cli.md").read_text()
    from anomalyd.cli.main import build_parser

    for name in build_parser().subcommands:
        if name not in ("rules", "topics"):
            assert re.search(rf"^\| `{re.escape(name)}`", doc, re.M), name


def test_a_rules_file_given_to_rules_test_says_so(w):
    rc, out, _ = run("rules", "test", "broken/r.yaml", "--no-snippet")
    assert rc == 1
    assert out.splitlines()[0] == (
        "broken/r.yaml:1:1: this is a rules file (top-level `rules:`), not a rule test file "
        "(top-level `tests:`, e.g. rules/tests/*.test.yaml)"
    )


def test_an_empty_rules_directory_is_not_ok(w):
    rc, out, err = run("rules", "check", "empty")
    assert rc == 1 and "OK" not in out and "empty: no rule files (*.yaml, *.yml) in this directory" in err


def test_a_misspelt_command_gets_a_did_you_mean(w):
    rc, _, err = run("replya", "ev.jsonl")
    assert rc == 2 and "invalid choice: 'replya'" in err and "did you mean 'replay'?" in err
    rc, _, err = run("rules", "chek", "x")
    assert rc == 2 and "did you mean 'check'?" in err
