"""The README's backtest example is what docs/make_examples.sh produces today."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script(name: str, out: Path, **env: str) -> None:
    """Run docs/NAME with its outputs written under `out`."""
    env = {
        **os.environ,
        "OUT": str(out),
        "ANOMALYD": str(Path(sys.executable).parent / "anomalyd"),
        "PYTHON": sys.executable,
        **env,
    }
    p = subprocess.run(
        ["bash", str(REPO / "docs" / name)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr


def test_make_examples_reproduces_the_committed_table_and_the_readme_shows_it(tmp_path):
    _script("make_examples.sh", tmp_path, SKIP_SCREENSHOT="1")
    made = (tmp_path / "examples" / "backtest.txt").read_text()
    committed = (REPO / "docs" / "examples" / "backtest.txt").read_text()
    assert made == committed, "docs/examples/backtest.txt is stale: run docs/make_examples.sh"
    readme = (REPO / "README.md").read_text()
    assert "docs/make_examples.sh" in readme and "--seed 7" in readme
    block = readme[readme.index("made by\n[`docs/make_examples.sh`]") :]
    table = re.search(r"\n```\n(rule .*?)\n\.\.\.\n```", block, re.S).group(1)
    lines = made.splitlines()
    for row in table.splitlines():
        assert row in lines, f"README row not in the script's output: {row!r}"


def test_make_rule_examples_reproduces_the_readme_output(tmp_path):
    _script("make_rule_examples.sh", tmp_path)
    readme = (REPO / "README.md").read_text()
    for name, rules in (
        ("second-edition", ["price-below-floor", "refund-spike", "coupon-abuse"]),
        ("across", ["unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident"]),
    ):
        made = (tmp_path / "examples" / f"{name}.txt").read_text()
        assert made == (REPO / "docs" / "examples" / f"{name}.txt").read_text(), (
            f"docs/examples/{name}.txt is stale: run docs/make_rule_examples.sh"
        )
        assert all(f"firing   {rid}" in made for rid in rules), (name, made)
        assert "\n```\n" + made + "```\n" in readme, f"the README does not show docs/examples/{name}.txt"


def test_make_operator_example_reproduces_the_readme_output(tmp_path):
    _script("make_operator_example.sh", tmp_path)
    made = (tmp_path / "examples" / "operator.txt").read_text()
    assert made == (REPO / "docs" / "examples" / "operator.txt").read_text(), (
        "docs/examples/operator.txt is stale: run docs/make_operator_example.sh"
    )
    assert " by mei: hold_closed by mei" in made and "[ack: {'by': 'mei'" in made
    assert "\n```\n" + made + "```\n" in (REPO / "README.md").read_text(), "the README does not show it"
