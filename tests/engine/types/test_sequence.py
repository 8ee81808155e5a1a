"""sequence (contract 3c): expectations opened by a first event and closed
by a then event; outcomes matched / mismatched / missed counted per group."""

from __future__ import annotations

import json

import pytest

from anomalyd.engine.engine import Engine
from anomalyd.engine.types import EngineConfig
from tests.helpers import MIN, T0, alerts, line, restored_run, rule, run

S = 1000


def created(ts: int, oid: str, sku: str = "S", unit_price=10, quantity=1, **kw) -> str:
    return line(
        "orders",
        ts,
        order_id=oid,
        sku=sku,
        quantity=quantity,
        unit_price=unit_price,
        status=kw.pop("status", "created"),
        merchant_id=kw.pop("merchant_id", "M"),
        **kw,
    )


def paid(ts: int, oid: str, amount=10, status="succeeded", **kw) -> str:
    return line(
        "payments", ts, payment_id="P-" + oid, order_id=oid, amount=amount, status=status, merchant_id="M", **kw
    )


UNPAID = dict(
    type="sequence",
    id="unpaid",
    first={"source": "orders", "key": "order_id", "where": [{"field": "status", "op": "==", "value": "created"}]},
    then={"source": "payments", "key": "order_id", "where": [{"field": "status", "op": "==", "value": "succeeded"}]},
    within="15m",
    group_by=["sku"],
    window="10m",
    op=">=",
    value=2,
)

MISMATCH = dict(
    UNPAID,
    id="mismatch",
    outcome=["mismatched"],
    within="30m",
    group_by=["merchant_id"],
    value=1,
    match={"first": "unit_price * quantity", "then": "amount", "tolerance": "1%"},
)


def test_missed_expectations_fire_at_the_deadline_and_resolve_as_the_window_moves_on():
    lines = [
        created(T0, "O1"),
        created(T0 + MIN, "O2"),
        created(T0 + 2 * MIN, "O3"),
        paid(T0 + 5 * MIN, "O3"),  # O3 matched: not counted
        paid(T0 + 6 * MIN, "O9"),  # no open expectation: ignored
        created(T0 + 40 * MIN, "O4", sku="X"),
    ]  # moves the stream's time on
    out = run([rule(**UNPAID)], lines)
    # O1 missed at 15m, O2 at 16m: the second makes 2, at its deadline, not at the next event (40m).
    assert alerts(out) == [("unpaid", "firing", "S", 16 * 60), ("unpaid", "resolved", "S", 25 * 60)]
    fired = next(v for t, _, v in out if t == "alerts")
    assert len(fired["evidence"]) == 2 and fired["details"] == {
        "count": 2,
        "matched": 0,
        "mismatched": 0,
        "missed": 2,
    }  # O3 at 5m is out of (6m, 16m]
    assert fired["source"] == "orders" and fired["group"] == {"sku": "S"}


def test_evidence_names_the_first_events_of_the_counted_outcomes():
    lines = [
        line("orders", T0, "ord-1", order_id="A", sku="S", quantity=1, unit_price=1, status="created"),
        line("orders", T0 + S, "ord-2", order_id="B", sku="S", quantity=1, unit_price=1, status="created"),
        line("orders", T0 + 2 * S, "ord-3", order_id="C", sku="S", quantity=1, unit_price=1, status="created"),
        paid(T0 + 3 * S, "C"),
        created(T0 + 20 * MIN, "Z", sku="other"),
    ]
    out = run([rule(**UNPAID)], lines)
    fired = [v for t, _, v in out if t == "alerts" and v["status"] == "firing"]
    assert [v["evidence"] for v in fired] == [["ord-1", "ord-2"]]


def test_outcome_kinds_are_counted_at_their_moments_and_the_deadline_is_exclusive():
    lines = [
        created(T0, "A"),
        paid(T0 + 15 * MIN - 1, "A"),  # just before its deadline: matched
        created(T0 + MIN, "B"),
        paid(T0 + 16 * MIN, "B"),  # at its deadline: too late, missed
        paid(T0 + 2 * MIN, "C"),
        created(T0 + 2 * MIN + 1, "C"),  # paid before created: C is missed
        created(T0 + 3 * MIN, "D"),
        paid(T0 + 3 * MIN + 1, "D"),
    ]  # matched
    lines.sort(key=lambda s: json.loads(s)["value"]["ts"])
    eng = Engine([rule(**dict(UNPAID, value=1, outcome=["matched"], window="1h"))])
    out = [x for ln in lines for x in eng.process_line(ln)]
    assert alerts(out) == [("unpaid", "firing", "S", 3 * 60)]  # D, at its payment's moment
    out = eng.process_line(created(T0 + 30 * MIN, "Z", sku="X"))
    r = eng.runners["unpaid"]
    st = r.store.get("S")
    r.agg.totals(st, (T0 + 30 * MIN) // r.b)
    assert st.tot == [2, 0, 2]  # matched A and D; missed B (at 16m) and C (at 17m)
    assert len(r.open) == 1  # only Z is still open


def test_a_second_first_event_is_ignored_and_one_source_can_be_both_ends():
    same = dict(
        UNPAID,
        id="same",
        value=1,
        outcome=["matched"],
        window="1h",
        then={"source": "orders", "key": "order_id", "where": [{"field": "status", "op": "==", "value": "paid"}]},
    )
    lines = [
        created(T0, "A"),
        created(T0 + 5 * MIN, "A"),  # the second first event changes nothing
        created(T0 + 14 * MIN, "A", status="paid"),
    ]  # 14m after the first: matched
    out = run([rule(**same)], lines)
    assert alerts(out) == [("same", "firing", "S", 14 * 60)]


def test_reconciliation_mismatch_with_a_percentage_or_absolute_tolerance():
    lines = [
        created(T0, "A", unit_price=10, quantity=3),
        paid(T0 + MIN, "A", amount=30.2),  # 0.2 <= 1% of 30
        created(T0 + 2 * MIN, "B", unit_price=10, quantity=3),
        paid(T0 + 3 * MIN, "B", amount=31),
    ]  # 1 > 0.3
    out = run([rule(**MISMATCH)], lines)
    assert alerts(out) == [("mismatch", "firing", "M", 3 * 60)]
    v = next(v for t, _, v in out if t == "alerts")
    assert v["details"]["mismatched"] == 1 and v["details"]["matched"] == 1
    absolute = dict(MISMATCH, match={"first": "unit_price * quantity", "then": "amount", "tolerance": 1})
    assert alerts(run([rule(**absolute)], lines)) == []


def test_a_value_that_cannot_be_read_is_a_mismatch():
    m = dict(MISMATCH, match={"first": "attrs.expected", "then": "amount", "tolerance": 0})
    lines = [created(T0, "A"), paid(T0 + MIN, "A", amount=10)]  # no attrs.expected on the order
    assert alerts(run([rule(**m)], lines)) == [("mismatch", "firing", "M", 60)]


def test_open_expectations_are_bounded_and_evictions_counted():
    eng = Engine([rule(**UNPAID)], EngineConfig(max_groups_per_rule=100))
    for i in range(250):
        eng.process_line(created(T0 + i, f"O{i}", sku=f"S{i % 3}"))
    r = eng.runners["unpaid"]
    assert len(r.open) <= 100 and r.open.evicted == 150 and eng.evictions()["unpaid"] == 150


def test_keys_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="mismatched' needs match"):
        rule(**dict(UNPAID, outcome=["mismatched"]))
    with pytest.raises(ValueError, match="tolerance"):
        rule(**dict(MISMATCH, match={"first": "a", "then": "b", "tolerance": "1 percent"}))
    with pytest.raises(ValueError, match="twice"):
        rule(**dict(UNPAID, outcome=["missed", "missed"]))


def test_restore_at_any_point_keeps_open_expectations():
    lines = []
    for i in range(80):
        t = T0 + i * 30 * S
        lines.append(created(t, f"O{i}", sku=f"S{i % 2}", unit_price=10, quantity=2, merchant_id="M"))
        if i % 3:
            lines.append(paid(t + (i % 5) * MIN, f"O{i}", amount=20 if i % 7 else 25))
    lines.sort(key=lambda s: json.loads(s)["value"]["ts"])
    rules = [rule(**dict(UNPAID, value=3)), rule(**MISMATCH)]
    whole = run(rules, lines)
    assert {v["rule_id"] for t, _, v in whole if t == "alerts"} == {"unpaid", "mismatch"}
    for cut in range(0, len(lines), 11):
        assert restored_run(lambda: [rule(**dict(UNPAID, value=3)), rule(**MISMATCH)], lines, cut) == whole, cut
