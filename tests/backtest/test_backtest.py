"""Backtest figures on a small stream checked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalyd.backtest import backtest
from tests.helpers import MIN, T0, inv, pay

RULES = """\
rules:
  - id: neg-stock
    source: inventory
    type: threshold
    field: available
    op: "<"
    value: 0
    group_by: [sku]
    severity: P1
    breaker: {action: pause_sales, scope: [sku], ttl: 30m}
  - id: big-payment
    source: payments
    type: threshold
    field: amount
    op: ">"
    value: 1000
    group_by: [merchant_id]
    mode: shadow
  - id: never
    source: complaints
    type: count
    window: 10m
    op: ">="
    value: 100
"""


def stream() -> list[str]:
    """Event time in minutes from T0, and what each line does:

    neg-stock:   SKU-1 fires at 10, resolves at 20 (10m); fires at 30, resolves at 50 (20m);
                 SKU-2 fires at 40 and is still firing at the end, 120 (80m). 3 breaker opens.
    big-payment: M-1 fires at 60, resolves at 70 (10m); M-2 fires at 90, open at the end (30m).
    A dead letter and a too-late event (SKU-9 at -100, 45 minutes behind) change nothing.
    """
    m = MIN
    return [
        inv(T0, "SKU-1", 10),
        inv(T0, "SKU-2", 5),
        inv(T0 + 10 * m, "SKU-1", -1),
        "this is not json",
        inv(T0 + 20 * m, "SKU-1", 3),
        inv(T0 + 30 * m, "SKU-1", -2),
        inv(T0 + 40 * m, "SKU-2", -5),
        inv(T0 + 50 * m, "SKU-1", 4),
        inv(T0 + 5 * m, "SKU-9", -100),  # too late: more than 1m behind the stream's time
        pay(T0 + 60 * m, amount=5000, merchant_id="M-1"),
        pay(T0 + 70 * m, amount=10, merchant_id="M-1"),
        pay(T0 + 90 * m, amount=2000, merchant_id="M-2"),
        inv(T0 + 120 * m, "SKU-3", 100),
    ]


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.yaml").write_text(RULES)
    return d


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_figures_on_a_hand_checked_stream(tmp_path, rules_dir):
    bt = backtest([str(write(tmp_path / "ev.jsonl", stream()))], rules_dir)
    d = bt.to_dict()
    ev = d["events"]
    assert ev["total"] == 12 and ev["dead_letters"] == 1 and ev["late"] == 1
    assert ev["by_topic"] == {"inventory": 9, "payments": 3}
    assert ev["span_ms"] == 120 * MIN and ev["span_hours"] == 2.0
    assert ev["first_ts"] == "2026-06-17T16:00:00.000Z" and ev["last_ts"] == "2026-06-17T18:00:00.000Z"

    neg = d["current"]["rules"]["neg-stock"]
    assert (neg["fired"], neg["resolved"], neg["open_at_end"], neg["groups"]) == (3, 2, 1, 2)
    assert neg["alerts_per_hour"] == 1.5
    assert neg["firing_ms"] == (10 + 20 + 80) * MIN
    assert neg["breaker_opens"] == 3 and neg["breaker"] == "pause_sales"
    assert neg["noisiest"] == [
        {"group": {"sku": "SKU-1"}, "firings": 2, "firing_ms": 30 * MIN},
        {"group": {"sku": "SKU-2"}, "firings": 1, "firing_ms": 80 * MIN},
    ]
    big = d["current"]["rules"]["big-payment"]
    assert big["mode"] == "shadow" and big["breaker"] is None
    assert (big["fired"], big["resolved"], big["open_at_end"], big["groups"]) == (2, 1, 1, 2)
    assert big["alerts_per_hour"] == 1.0 and big["firing_ms"] == (10 + 30) * MIN and big["breaker_opens"] == 0
    never = d["current"]["rules"]["never"]
    assert (never["fired"], never["groups"], never["firing_ms"], never["noisiest"]) == (0, 0, 0, [])
    assert never["alerts_per_hour"] == 0.0

    tot = d["current"]["totals"]
    assert tot["fired"] == 5 and tot["resolved"] == 3 and tot["open_at_end"] == 2
    assert tot["alerts_per_hour"] == 2.5 and tot["firing_ms"] == 150 * MIN and tot["breaker_opens"] == 3
    assert d["labels"] is None and d["baseline"] is None and d["diff"] is None
    assert all(s["score"] is None for s in d["current"]["rules"].values())


def test_json_keys_are_stable(tmp_path, rules_dir):
    d = backtest([str(write(tmp_path / "ev.jsonl", stream()))], rules_dir).to_dict()
    assert list(d) == ["report_version", "inputs", "events", "labels", "current", "baseline", "diff"]
    assert set(d["current"]) == {"rules_dir", "ruleset_version", "rules", "totals"}
    assert set(d["current"]["rules"]["neg-stock"]) == {
        "rule_id",
        "type",
        "source",
        "severity",
        "mode",
        "breaker",
        "kind",
        "fired",
        "resolved",
        "open_at_end",
        "groups",
        "alerts_per_hour",
        "firing_ms",
        "breaker_opens",
        "noisiest",
        "score",
    }
    json.dumps(d)  # serialisable as is


def kcat(line: str, offset: int) -> str:
    """The same record as `kcat -C -J` prints it: the value is a string in `payload`."""
    env = json.loads(line)
    return json.dumps(
        {
            "topic": env["topic"],
            "partition": 0,
            "offset": offset,
            "tstype": "create",
            "ts": env["value"]["ts"],
            "broker": 1,
            "key": None,
            "payload": json.dumps(env["value"]),
        }
    )


def test_per_topic_kcat_dumps_merge_by_event_time(tmp_path, rules_dir):
    """Per-topic dumps given side by side give the same figures as one time-ordered file."""
    lines = [ln for ln in stream() if ln.startswith("{")]
    one = backtest([str(write(tmp_path / "all.jsonl", lines))], rules_dir).to_dict()
    inv_lines = [kcat(ln, i) for i, ln in enumerate(ln for ln in lines if '"inventory"' in ln)]
    pay_lines = [kcat(ln, i) for i, ln in enumerate(ln for ln in lines if '"payments"' in ln)]
    two = backtest(
        [str(write(tmp_path / "payments.json", pay_lines)), str(write(tmp_path / "inventory.json", inv_lines))],
        rules_dir,
    ).to_dict()
    assert two["current"]["rules"] == one["current"]["rules"]
    assert two["events"] | {"late": 0} == one["events"] | {"late": 0}
    # Concatenated instead of merged, the inventory dump would be all too late.
    assert one["current"]["rules"]["neg-stock"]["fired"] == 3


def test_episodes_and_evidence(tmp_path, rules_dir):
    bt = backtest([str(write(tmp_path / "ev.jsonl", stream()))], rules_dir)
    eps = bt.current.rules["neg-stock"].episodes
    assert [(e.group["sku"], (e.start - T0) // MIN, None if e.end is None else (e.end - T0) // MIN) for e in eps] == [
        ("SKU-1", 10, 20),
        ("SKU-1", 30, 50),
        ("SKU-2", 40, None),
    ]
    assert all(len(e.evidence) == 1 for e in eps)


def test_empty_input(tmp_path, rules_dir):
    d = backtest([str(write(tmp_path / "ev.jsonl", ["not json"]))], rules_dir).to_dict()
    assert d["events"]["total"] == 0 and d["events"]["dead_letters"] == 1 and d["events"]["span_ms"] == 0
    assert d["current"]["rules"]["neg-stock"]["alerts_per_hour"] is None


def test_missing_file_raises_before_any_work(tmp_path, rules_dir):
    with pytest.raises(FileNotFoundError):
        backtest([str(tmp_path / "nope.jsonl")], rules_dir)
