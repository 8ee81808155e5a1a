"""`backtest` through its argparse entry points, as the main CLI will call them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from anomalyd.cli.backtest import add_parser, run
from tests.backtest.conftest import DEFAULT_RULES, copy_rules, edit
from tests.backtest.test_backtest import RULES, stream


def cli(*argv: str) -> int:
    ap = argparse.ArgumentParser(prog="anomalyd")
    sub = ap.add_subparsers(dest="cmd")
    add_parser(sub)
    return run(ap.parse_args(["backtest", *argv]))


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    ev = tmp_path / "ev.jsonl"
    ev.write_text("\n".join(stream()) + "\n")
    return ev, rules


def test_table(files, capsys):
    ev, rules = files
    assert cli(str(ev), "--rules", str(rules)) == 0
    out = capsys.readouterr().out
    assert "12 events over 2026-06-17T16:00:00.000Z → 2026-06-17T18:00:00.000Z (2h)" in out
    assert "1 dead letters, 1 too late" in out
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("neg-stock"))
    assert row.split()[:8] == ["neg-stock", "3", "2", "+1", "open", "2", "1.50", "1h50m"]
    assert "SKU-1 ×2" in row
    assert "big-payment shadow" in out


def test_json(files, capsys):
    ev, rules = files
    assert cli(str(ev), "--rules", str(rules), "--json", "--allowed-lateness", "2h") == 0
    d = json.loads(capsys.readouterr().out)
    assert d["events"]["late"] == 0  # SKU-9 is within the lateness now, and fires
    assert d["current"]["rules"]["neg-stock"]["fired"] == 4


def test_baseline_and_html(tmp_path, sim_file, capsys):
    new = copy_rules(tmp_path / "rules")
    edit(new / "inventory.yaml", "    value: 0\n", "    value: -30\n")
    html = tmp_path / "report.html"
    assert cli(str(sim_file), "--rules", str(new), "--baseline", str(DEFAULT_RULES), "--html", str(html)) == 0
    cap = capsys.readouterr()
    assert f"report: {html}" in cap.err
    row = next(ln for ln in cap.out.splitlines() if ln.strip().startswith("negative-stock"))
    assert row.split()[:2] == ["negative-stock", "changed"]
    assert row.split()[-3:] == ["1", "1", "0"]  # +new −old =both
    assert "episodes that differ from the baseline" in cap.out
    assert html.read_text().startswith("<!doctype html>")


def test_rules_that_fail_to_load_exit_1(tmp_path, files, capsys):
    ev, _ = files
    bad = copy_rules(tmp_path / "bad")
    edit(bad / "inventory.yaml", "    field: available\n", "    feild: available\n")
    assert cli(str(ev), "--rules", str(DEFAULT_RULES), "--baseline", str(bad)) == 1
    err = capsys.readouterr().err
    assert f"{bad / 'inventory.yaml'}:7:5: unknown key 'feild'; did you mean 'field'?" in err


def test_usage_errors_exit_2(tmp_path, files, capsys):
    ev, rules = files
    assert cli(str(tmp_path / "missing.jsonl"), "--rules", str(rules)) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert cli(str(ev), "--rules", str(rules), "--html", str(tmp_path / "no" / "dir" / "r.html")) == 2
    with pytest.raises(SystemExit) as exc:
        cli(str(ev))  # --rules is required
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli(str(ev), "--rules", str(rules), "--allowed-lateness", "soon")
    assert exc.value.code == 2
