"""The HTML report: self-contained, escaped, deterministic, and it renders in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from anomalyd.backtest import backtest
from anomalyd.backtest.report_html import render
from tests.backtest.conftest import DEFAULT_RULES, copy_rules, edit
from tests.backtest.png import colour_stats
from tests.helpers import MIN, T0, inv

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def report(run_report) -> Path:
    return run_report[0]


@pytest.fixture(scope="module")
def run_report(tmp_path_factory, sim_file):
    """Edited rules against the defaults, over labelled simulated traffic: every section is present."""
    d = tmp_path_factory.mktemp("html")
    new = copy_rules(d / "rules")
    edit(new / "inventory.yaml", "    value: 0\n", "    value: -30\n")
    edit(new / "payments.yaml", "    value: 0.2\n", "    value: 0.05\n")
    bt = backtest([str(sim_file)], new, baseline=DEFAULT_RULES)
    bt.current.source, bt.baseline.source = "rules-candidate", "rules"
    out = d / "report.html"
    out.write_text(render(bt), encoding="utf-8")
    return out, bt


def test_self_contained_and_complete(run_report):
    report, bt = run_report
    html = report.read_text()
    for needle in ("<script", "<link", "src=", "url(", "@import", "http://", "https://"):
        assert needle not in html, needle
    fired = {rid for rid, rr in bt.current.rules.items() if rr.fired}
    assert len(fired) >= 6 and html.count('<svg class="tl"') == len(fired)  # a timeline per rule that fired
    assert html.count("No alerts over the input") == len(bt.current.rules) - len(fired)
    for section in ("<h2>Rules</h2>", "Changes against the baseline", "Labelled anomalies", "<h2>Timelines</h2>"):
        assert section in html
    assert 'id="rule-negative-stock"' in html and 'href="#rule-negative-stock"' in html
    assert html.count('class="ep new"') >= 2 and html.count('class="ep old"') >= 1
    assert html.count('class="band"') >= 6  # labelled anomalies drawn behind the bars


def test_escaped_and_deterministic(tmp_path: Path):
    rules = copy_rules(tmp_path / "rules")
    ev = tmp_path / "ev.jsonl"
    ev.write_text(inv(T0, "<script>alert(1)</script>", -1) + "\n" + inv(T0 + MIN, "S&P", 3) + "\n")
    a = render(backtest([str(ev)], rules))
    b = render(backtest([str(ev)], rules))
    assert a == b
    assert "<script>" not in a and "&lt;script&gt;alert(1)&lt;/script&gt;" in a
    assert re.search(r"No alerts over the input", a)


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_renders_in_headless_chromium(report: Path, tmp_path: Path):
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert shot.exists(), proc.stderr[-2000:]
    width, height, colours, not_background = colour_stats(shot)
    assert (width, height) == (1200, 900)
    # A blank or error page has a handful of colours; the report has text, chips, cards and bars.
    assert colours > 300, colours
    assert not_background > 0.2, not_background


def test_timeline_caps_rows_and_merges_dense_episodes(tmp_path: Path):
    from tests.helpers import line

    rules = copy_rules(tmp_path / "rules")
    lines = []
    for g in range(45):  # 45 SKUs dip below zero once: 40 rows drawn, 5 noted
        lines += [inv(T0 + g * 1000, f"SKU-{g:02d}", -1), inv(T0 + g * 1000 + 500, f"SKU-{g:02d}", 5)]
    for i in range(300):  # SKU-XX flaps every second for five minutes: far less than a pixel apart
        lines.append(inv(T0 + MIN + i * 1000, "SKU-XX", -1 if i % 2 == 0 else 5))
    lines.append(
        line("orders", T0 + 600 * MIN, order_id="O", sku="S", quantity=1, unit_price=5, status="paid", channel="web")
    )
    ev = tmp_path / "ev.jsonl"
    ev.write_text("\n".join(lines) + "\n")
    bt = backtest([str(ev)], rules)
    assert bt.current.rules["negative-stock"].fired == 45 + 150
    html = render(bt)
    part = html[html.index('id="rule-negative-stock"') :]
    part = part[: part.index("</svg>")]
    assert part.count('class="glabel"') == 40
    assert "6 more groups not drawn" in html  # 46 groups
    assert "SKU-XX: 150 episodes" in part  # the noisiest group is kept, its flapping drawn as one bar
    assert part.count('<rect class="ep') == 40
