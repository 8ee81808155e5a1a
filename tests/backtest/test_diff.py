"""The diff against a baseline after a rules edit."""

from __future__ import annotations

from pathlib import Path

from anomalyd.backtest import backtest
from tests.backtest.conftest import DEFAULT_RULES, copy_rules, edit
from tests.helpers import MIN, T0, inv, line


def stream() -> list[str]:
    """SKU-1 goes 100 -> -20 (5m) -> -50 (7m) -> 400 (15m); SKU-2 drops to -40 (3m), back at 9m;
    transfers fail 6 times with E_BANK_DOWN from 20m (below the default burst of 15)."""
    out = [
        inv(T0, "SKU-1", 100),
        inv(T0, "SKU-2", 100),
        inv(T0 + 3 * MIN, "SKU-2", -40),
        inv(T0 + 5 * MIN, "SKU-1", -20),
        inv(T0 + 7 * MIN, "SKU-1", -50),
        inv(T0 + 9 * MIN, "SKU-2", 10),
        inv(T0 + 15 * MIN, "SKU-1", 400),
    ]
    for i in range(6):
        out.append(
            line(
                "payments",
                T0 + 20 * MIN + i * 30_000,
                payment_id="P",
                order_id="O",
                amount=50,
                status="failed",
                method="transfer",
                error_code="E_BANK_DOWN",
                merchant_id="M-1",
            )
        )
    out.append(inv(T0 + 30 * MIN, "SKU-3", 7))
    return out


def test_threshold_edit_adds_and_removes_episodes(tmp_path: Path):
    new = copy_rules(tmp_path / "rules")
    # Stock must fall below -30 now: SKU-1 fires two minutes later (at -50), SKU-2 (-40) as before.
    edit(new / "inventory.yaml", "    value: 0\n", "    value: -30\n")
    # A burst is 5 failures now: the six transfers raise an alert the old rules did not.
    edit(new / "payments.yaml", '    op: ">="\n    value: 15\n', '    op: ">="\n    value: 5\n')
    ev = tmp_path / "ev.jsonl"
    ev.write_text("\n".join(stream()) + "\n")

    bt = backtest([str(ev)], new, baseline=DEFAULT_RULES)
    diff = bt.to_dict()["diff"]
    neg = diff["rules"]["negative-stock"]
    assert neg["status"] == "changed"
    assert (neg["only_new"], neg["only_old"], neg["both"], neg["ended_differently"]) == (1, 1, 1, 0)
    assert [(e["group"], e["started_at"], e["resolved_at"]) for e in neg["new_episodes"]] == [
        ({"sku": "SKU-1"}, "2026-06-17T16:07:00.000Z", "2026-06-17T16:15:00.000Z")
    ]
    assert [(e["group"], e["started_at"], e["resolved_at"]) for e in neg["old_episodes"]] == [
        ({"sku": "SKU-1"}, "2026-06-17T16:05:00.000Z", "2026-06-17T16:15:00.000Z")
    ]
    burst = diff["rules"]["payment-error-burst"]
    assert burst["status"] == "changed"
    assert (burst["only_new"], burst["only_old"], burst["both"]) == (1, 0, 0)
    assert burst["new_episodes"][0]["group"] == {"method": "transfer", "error_code": "E_BANK_DOWN"}
    assert burst["new_episodes"][0]["started_at"] == "2026-06-17T16:22:00.000Z"  # the fifth failure
    for rid in (
        "complaint-surge",
        "order-price-swing",
        "payment-amount-swing",
        "payment-failure-ratio",
        "order-feed-silent",
    ):
        r = diff["rules"][rid]
        assert r["status"] == "unchanged" and r["only_new"] == r["only_old"] == 0, rid
    assert diff["totals"] == {"only_new": 2, "only_old": 1, "both": 1, "ended_differently": 0}
    # Both sides' own figures are there too.
    d = bt.to_dict()
    assert d["baseline"]["rules"]["negative-stock"]["firing_ms"] == (10 + 6) * MIN
    assert d["current"]["rules"]["negative-stock"]["firing_ms"] == (8 + 6) * MIN
    assert bt.diff_status()[("negative-stock", '{"sku":"SKU-2"}', T0 + 3 * MIN)] == "both"


def test_added_removed_and_resolution_changes(tmp_path: Path):
    new = copy_rules(tmp_path / "rules")
    edit(new / "inventory.yaml", "  - id: negative-stock\n", "  - id: negative-stock\n    cooldown: 10m\n")
    edit(new / "payments.yaml", "  - id: payment-error-burst\n", "  - id: payment-error-burst\n    enabled: false\n")
    (new / "extra.yaml").write_text(
        "rules:\n  - id: low-stock\n    source: inventory\n    type: threshold\n    field: available\n"
        '    op: "<"\n    value: 50\n    group_by: [sku]\n'
    )
    ev = tmp_path / "ev.jsonl"
    ev.write_text("\n".join(stream()) + "\n")
    old = copy_rules(tmp_path / "old")
    edit(old / "payments.yaml", '    op: ">="\n    value: 15\n', '    op: ">="\n    value: 5\n')

    bt = backtest([str(ev)], new, baseline=old)
    diff = bt.to_dict()["diff"]
    assert diff["rules"]["low-stock"]["status"] == "added"
    assert diff["rules"]["low-stock"]["only_new"] == 3  # SKU-2 at 3m, SKU-1 at 5m, SKU-3 at 30m
    assert diff["rules"]["payment-error-burst"]["status"] == "removed"
    assert (diff["rules"]["payment-error-burst"]["only_old"], diff["rules"]["payment-error-burst"]["only_new"]) == (
        1,
        0,
    )
    neg = diff["rules"]["negative-stock"]
    # The same episodes start, but with a 10m cooldown each resolves 10m after its last
    # breach (SKU-2: 3m -> 13m instead of 9m; SKU-1: 7m -> 17m instead of 15m).
    assert (neg["status"], neg["only_new"], neg["only_old"], neg["both"], neg["ended_differently"]) == (
        "changed",
        0,
        0,
        2,
        2,
    )
    ends = {e.group["sku"]: (e.end - T0) // MIN for e in bt.current.rules["negative-stock"].episodes}
    assert ends == {"SKU-2": 13, "SKU-1": 17}
    assert {e.group["sku"]: (e.end - T0) // MIN for e in bt.baseline.rules["negative-stock"].episodes} == {
        "SKU-2": 9,
        "SKU-1": 15,
    }
