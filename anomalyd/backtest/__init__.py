"""Backtesting rules over recorded events (issue 6): per-rule figures, the diff
against a baseline rule set, precision/recall against simulator labels, and
terminal / JSON / HTML reports. Definitions are in `anomalyd.backtest.core`.

    from anomalyd.backtest import backtest
    bt = backtest(["traffic.jsonl"], "rules", baseline="rules-deployed")
    bt.to_dict()                      # the --json report
    report_html.render(bt)            # the --html page
    text.render(bt, sys.stdout)       # the terminal tables
"""

from .core import KIND_RULES, Backtest, backtest

__all__ = ["KIND_RULES", "Backtest", "backtest"]
