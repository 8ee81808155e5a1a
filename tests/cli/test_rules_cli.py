"""`anomalyd rules check|list|test` as a user runs them."""

import subprocess
import sys
from pathlib import Path

from anomalyd.engine.rules.loader import load_rules

ANOMALYD = [sys.executable, "-m", "anomalyd.cli.main"]

FOUR_ERRORS = """rules:
  - id: low-stock
    source: inventory
    type: threshold
    field: available
    op: "<"
    value: 5
  - id: low-stock
    source: inventory
    type: threshold
    field: available
    op: "<"
    value: 0
  - id: slow-feed
    source: orders
    type: absence
    window: 5mins
  - id: price
    source: orders
    type: change
    field: price
    pct: 30
  - id: burst
    source: payments
    type: count
    window: 10m
    op: ">"
    value: 10
    group_by: [error_code]
    severty: P1
"""


def cli(*args, cwd=None):
    return subprocess.run(ANOMALYD + list(args), capture_output=True, text=True, cwd=cwd)


def test_rules_check_prints_four_errors_with_exact_lines_and_exits_1(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(FOUR_ERRORS)
    p = cli("rules", "check", str(tmp_path), "--no-snippet")
    assert p.returncode == 1
    assert p.stdout.splitlines() == [
        f"{f}:8:9: duplicate rule id 'low-stock' (first defined at {f}:2:9)",
        f"{f}:17:13: window: bad duration '5mins': use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)",
        f"{f}:21:12: unknown field 'price' for source orders; did you mean 'unit_price'?",
        f"{f}:30:5: unknown key 'severty'; did you mean 'severity'?",
    ]
    assert "4 errors; nothing loaded" in p.stderr


def test_rules_check_shows_a_snippet_with_a_caret(tmp_path):
    (tmp_path / "bad.yaml").write_text(FOUR_ERRORS)
    lines = cli("rules", "check", str(tmp_path)).stdout.splitlines()
    i = next(n for n, ln in enumerate(lines) if ":30:5:" in ln)
    assert lines[i + 1] == "        severty: P1" and lines[i + 2] == "        ^"


def test_rules_check_ok_and_usage_errors():
    p = cli("rules", "check", "rules")
    assert p.returncode == 0 and p.stdout.startswith("OK: 15 rules (15 enabled) in 5 files")
    assert cli("rules", "frobnicate").returncode == 2
    assert cli("replay").returncode == 2
    assert cli("rules", "check", "/no/such/dir").returncode == 2  # a missing path is a usage error


def test_rules_list_shows_owner_and_state():
    p = cli("rules", "list", "rules")
    assert p.returncode == 0
    assert "negative-stock" in p.stdout and "supply-oncall" in p.stdout and "pause_sales" in p.stdout
    rows = {ln.split("│")[1].strip(): ln for ln in p.stdout.splitlines() if ln.count("│") > 3}
    assert "orders → payments" in rows["payment-order-mismatch"]  # what a rule reads
    assert "alerts of payment-error-burst" in rows["payment-channel-incident"]


def test_every_shipped_rule_has_unit_tests_and_they_pass():
    tested = set()
    import yaml

    for f in Path("rules/tests").glob("*.test.yaml"):
        for t in yaml.safe_load(f.read_text())["tests"]:
            tested.update(t.get("rules", []))
    assert {lr.rule.id for lr in load_rules("rules").rules} <= tested
    p = cli("rules", "test", "rules/tests")
    assert p.returncode == 0, p.stdout
    assert p.stdout.strip().endswith("0 failed")


def test_rules_test_failure_shows_the_difference_and_exits_1(tmp_path):
    (tmp_path / "r.test.yaml").write_text(f"""
rule_files: [{Path("rules").resolve()}]
start: 2026-06-18T00:00:00+08:00
tests:
  - name: expects the wrong value
    rules: [negative-stock]
    input:
      - {{topic: inventory, ts: "+1m", sku: S, available: -4}}
    expect_alerts:
      - {{rule_id: negative-stock, status: firing, value: -5}}
""")
    p = cli("rules", "test", str(tmp_path / "r.test.yaml"))
    assert p.returncode == 1
    assert "value: expected -5, got -4" in p.stdout and "0 passed, 1 failed" in p.stdout


def test_usage_errors_name_what_is_wrong():
    import os

    p = cli("rules", "test", "no-such.test.yaml")
    assert p.returncode == 2 and "no-such.test.yaml: no such test file" in p.stderr
    p = subprocess.run(
        ANOMALYD + ["run"], capture_output=True, text=True, env={**os.environ, "ANOMALYD_CHECKPOINT_INTERVAL": "5"}
    )
    assert p.returncode == 2
    assert "ANOMALYD_CHECKPOINT_INTERVAL: bad duration '5'" in p.stderr
