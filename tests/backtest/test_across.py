"""Backtest of rules across sources and over rules: per sequence rule how
its expectations ended; correlate episodes with their inputs; precision and
recall over the simulator's labelled cross-source anomalies."""

from __future__ import annotations

import json

from anomalyd.backtest.core import backtest
from anomalyd.backtest.report_html import render
from anomalyd.simulate import generate


def test_backtest_reports_sequence_outcomes_and_correlate_inputs(tmp_path):
    f = tmp_path / "sim.jsonl"
    with open(f, "w") as out:
        for env in generate(
            seed=5, minutes=75, rate=2, anomalies=["unpaid-orders", "amount-mismatch", "channel-incident"]
        ):
            out.write(json.dumps(env) + "\n")
    bt = backtest([str(f)], "rules")
    rules = bt.to_dict()["current"]["rules"]
    # unpaid-orders: 30 orders created, every fifth paid; amount-mismatch: 4 orders, 2 paid 10% short
    assert rules["unpaid-orders-holding-stock"]["outcomes"] == {"matched": 6 + 4, "mismatched": 0, "missed": 24}
    assert rules["payment-order-mismatch"]["outcomes"] == {"matched": 6 + 2, "mismatched": 2, "missed": 24}
    assert "outcomes" not in rules["negative-stock"]
    for rid in ("unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident"):
        assert rules[rid]["score"]["recall"] == 1.0 and rules[rid]["score"]["precision"] == 1.0, rid
    inc = [e for e in bt.current.rules["payment-channel-incident"].episodes]
    assert len(inc) == 1 and inc[0].inputs.count("payment-error-burst (method=wallet") == 3
    html = render(bt)
    assert "Sequence outcomes" in html and "Correlated incidents" in html and inc[0].inputs in html
