"""`anomalyd rules test`: a test file with a mistake never passes silently.

Unknown keys are errors at FILE:LINE:COL with a did-you-mean (through the
rules loader's position-tracking composition), and an input event that the
engine refuses makes the test fail with the dead letter's reason."""

import subprocess
import sys
from pathlib import Path

ANOMALYD = [sys.executable, "-m", "anomalyd"]
RULES = Path("rules").resolve()


def rules_test(tmp_path, body: str, *flags: str):
    f = tmp_path / "t.test.yaml"
    f.write_text(f"rule_files: [{RULES}]\nstart: 2026-06-18T00:00:00+08:00\ntests:\n" + body)
    p = subprocess.run(ANOMALYD + ["rules", "test", str(f), *flags], capture_output=True, text=True)
    return f, p


GOOD_TEST = """  - name: oversold
    rules: [negative-stock]
    input:
      - {topic: inventory, ts: "+1m", sku: S, available: -4}
"""


def test_typo_expect_alert_is_an_error_with_place_and_did_you_mean(tmp_path):
    f, p = rules_test(tmp_path, GOOD_TEST + "    expect_alert:\n      - {rule_id: negative-stock, value: -5}\n")
    assert p.returncode == 1
    assert f"{f}:8:5: unknown key 'expect_alert' in a test; did you mean 'expect_alerts'?" in p.stdout
    assert "        expect_alert:\n        ^" in p.stdout  # the snippet
    assert "0 passed, 1 failed" in p.stdout


def test_bogus_and_misspelt_keys_everywhere_are_errors(tmp_path):
    f, p = rules_test(
        tmp_path,
        GOOD_TEST.replace("available: -4}", "available: -4, warehose: X}")
        + "    expect_commandz: []\n    bogus_key: 1\n    expect_alerts:\n      - {rule_id: negative-stock, valu: -4}\n",
    )
    assert p.returncode == 1
    out = p.stdout
    assert f"{f}:7:62: unknown key 'warehose' in an inventory input; did you mean 'warehouse'?" in out
    assert f"{f}:8:5: unknown key 'expect_commandz' in a test; did you mean 'expect_commands'?" in out
    assert f"{f}:9:5: unknown key 'bogus_key' in a test (allowed: name, rules," in out
    assert f"{f}:11:35: unknown key 'valu' in expect_alerts; did you mean 'value'?" in out
    assert "4 errors in the test file; its tests were not run" in out


def test_top_level_typo_and_bad_values(tmp_path):
    f = tmp_path / "t.test.yaml"
    f.write_text(
        f"rule_file: [{RULES}]\nstart: 2026-06-18T00:00:00+08:00\ntests:\n"
        "  - input:\n      - {topic: inventory, ts: '+1x', repeat: 0, every: 1 min, sku: S, available: 1}\n"
    )
    p = subprocess.run(ANOMALYD + ["rules", "test", str(f), "--no-snippet"], capture_output=True, text=True)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[:4] == [
        f"{f}:1:1: unknown key 'rule_file' in a test file; did you mean 'rule_files'?",
        f"{f}:5:32: ts: bad duration '1x': use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)",
        f"{f}:5:47: repeat: expected a whole number >= 1, got 0",
        f"{f}:5:57: every: bad duration '1 min': use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)",
    ]


def test_yaml_syntax_error_points_at_the_unclosed_bracket(tmp_path):
    f, p = rules_test(tmp_path, "  - name: x\n    rules: [negative-stock\n")
    assert p.returncode == 1
    assert f"{f}:5:12: YAML syntax: this '[' is never closed" in p.stdout
    assert "        rules: [negative-stock\n               ^" in p.stdout


def test_a_refused_input_event_fails_the_test_with_its_reason(tmp_path):
    f, p = rules_test(
        tmp_path,
        """  - name: refused
    rules: [negative-stock]
    input:
      - {topic: inventory, ts: "ten minutes", sku: S, available: -4}
      - {topic: inventry, ts: "+1m", sku: S, available: -4}
    expect_alerts: []
""",
    )
    assert p.returncode == 1
    out = p.stdout
    assert "input refused by the engine (2; add expect_dead_letters if that is the point)" in out
    assert f"{f}:7:9: ts: " in out and 'got "ten minutes"' in out
    assert f"{f}:8:9: unknown topic 'inventry'; did you mean 'inventory'? [unknown_topic]" in out


def test_expected_dead_letters_still_pass(tmp_path):
    _, p = rules_test(
        tmp_path,
        """  - name: refused on purpose
    rules: [negative-stock]
    input:
      - {topic: inventory, ts: "ten minutes", sku: S, available: -4}
    expect_dead_letters: [{reason_code: invalid_field}]
""",
    )
    assert p.returncode == 0, p.stdout


def test_unknown_rule_id_is_named_with_did_you_mean(tmp_path):
    f, p = rules_test(tmp_path, GOOD_TEST.replace("[negative-stock]", "[negative-stok]"))
    assert p.returncode == 1
    assert f"{f}:5:13: unknown rule 'negative-stok'; did you mean 'negative-stock'?" in p.stdout


def test_a_directory_without_test_files_is_a_usage_error(tmp_path):
    p = subprocess.run(ANOMALYD + ["rules", "test", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2 and "no *.test.yaml files" in p.stderr


def test_a_missing_rule_files_entry_points_into_the_test_file(tmp_path):
    f = tmp_path / "t.test.yaml"
    f.write_text("rule_files: [../rulez]\ntests:\n  - input: []\n")
    p = subprocess.run(ANOMALYD + ["rules", "test", str(f), "--no-snippet"], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stdout.startswith(f"{f}:1:14: rule_files: no such directory or file '../rulez'")
