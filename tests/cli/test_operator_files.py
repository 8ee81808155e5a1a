"""Files holding operator actions: `rules test` and `backtest` apply them in
event time, as `replay` and the service do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOUR = REPO / "docs" / "examples" / "operator-tour.jsonl"


def anomalyd(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anomalyd", *args], capture_output=True, text=True, cwd=cwd)


def test_backtest_of_a_file_with_actions_shows_the_breakers_as_they_were():
    p = anomalyd("backtest", str(TOUR), "--rules", "rules", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["events"]["by_topic"] == {"inventory": 5, "operator-actions": 3}
    assert rep["events"]["dead_letters"] == 1  # the close of a breaker that is not open
    ns = rep["current"]["rules"]["negative-stock"]
    assert (ns["fired"], ns["breaker_opens"]) == (1, 2)  # opened, held closed, reopened at the hold's end


TEST = """rule_files: [rules]
start: 2026-11-11T20:00:00+08:00
tests:
  - name: held closed for an hour, the breaker opens again when the hold ends
    rules: [negative-stock]
    input:
      - {topic: inventory, ts: "+0m", sku: SKU-1, available: -5}
      - {topic: operator-actions, ts: "+1m", action: hold_closed, rule_id: negative-stock, scope: {sku: SKU-1},
         until: "+61m", by: mei, reason: flash sale}
      - {topic: inventory, ts: "+70m", sku: SKU-1, available: -6}
    expect_commands:
      - {action: open, scope: {sku: SKU-1}, ts: "+0m"}
      - {action: close, scope: {sku: SKU-1}, ts: "+1m", by: mei, reason: "hold_closed by mei: flash sale"}
      - {action: open, scope: {sku: SKU-1}, ts: "+61m", expires_at: "+91m"}
"""


def test_rules_test_takes_operator_actions_as_inputs(tmp_path):
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    (tmp_path / "hold.test.yaml").write_text(TEST)
    p = anomalyd("rules", "test", "hold.test.yaml", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed, 0 failed" in p.stdout
    (tmp_path / "hold.test.yaml").write_text(TEST.replace('ts: "+61m"', 'ts: "+62m"'))
    assert anomalyd("rules", "test", "hold.test.yaml", cwd=tmp_path).returncode == 1
