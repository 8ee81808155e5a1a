"""correlate (contract 3c): rules over rules. Input alerts firing in a group
make the figure; a correlate rule can read correlate rules; cycles refused."""

from __future__ import annotations

import pytest

from anomalyd.engine.engine import Engine
from tests.helpers import MIN, T0, alerts, cmp, commands, inv, line, restored_run, rule, run

S = 1000


def failed(ts: int, method: str, code: str) -> str:
    return line(
        "payments",
        ts,
        payment_id="P",
        order_id="O",
        amount=10,
        status="failed",
        method=method,
        error_code=code,
        merchant_id="M",
    )


BURST = dict(
    type="count",
    id="burst",
    source="payments",
    where=[{"field": "status", "op": "==", "value": "failed"}],
    group_by=["method", "error_code"],
    window="5m",
    op=">=",
    value=2,
    tags=["payments"],
)
INCIDENT = dict(
    type="correlate",
    id="incident",
    rules=["burst"],
    group_by=["method"],
    count="groups",
    op=">=",
    value=3,
    severity="P0",
    breaker={"action": "freeze_channel", "scope": ["method"], "ttl": "10m"},
)


def test_error_codes_bursting_on_one_method_become_one_incident_with_a_breaker():
    lines = []
    for i, code in enumerate(["E1", "E2", "E3"]):
        lines += [failed(T0 + i * MIN, "alipay", code), failed(T0 + i * MIN + S, "alipay", code)]
    lines += [
        failed(T0 + 3 * MIN, "card", "E1"),
        failed(T0 + 3 * MIN + S, "card", "E1"),
    ]  # one code on card: no incident
    lines.append(failed(T0 + 20 * MIN, "other", "X"))  # the bursts age out
    out = run([rule(**BURST), rule(**INCIDENT)], lines)
    inc = [a for a in alerts(out) if a[0] == "incident"]
    # The third code's burst makes 3 at 2m01s; the first code's burst ages out of its 5m window at 5m: 2 left.
    assert inc == [("incident", "firing", "alipay", 121), ("incident", "resolved", "alipay", 5 * 60)]
    fired = next(v for t, _, v in out if t == "alerts" and v["rule_id"] == "incident")
    assert fired["severity"] == "P0" and fired["source"] == "alerts" and fired["value"] == 3
    assert (
        fired["details"]["alerts"] == "burst (method=alipay, error_code=E1); burst (method=alipay, error_code=E2); "
        "burst (method=alipay, error_code=E3)"
    )
    burst_ids = [
        v["alert_id"]
        for t, _, v in out
        if t == "alerts" and v["rule_id"] == "burst" and v["status"] == "firing" and v["group"]["method"] == "alipay"
    ]
    assert sorted(fired["evidence"]) == sorted(burst_ids)
    assert commands(out) == [("open", "alipay"), ("close", "alipay")]


def test_count_rules_needs_distinct_rules_firing_in_the_group():
    neg = dict(type="threshold", id="neg", source="inventory", field="available", op="<", value=0, group_by=["sku"])
    surge = dict(type="count", id="complaints", source="complaints", group_by=["sku"], window="10m", op=">=", value=2)
    double = dict(
        type="correlate", id="double", rules=["complaints", "neg"], group_by=["sku"], count="rules", op=">=", value=2
    )
    lines = [
        inv(T0, "A", -5),
        inv(T0 + S, "B", -1),
        cmp(T0 + 2 * S, "A"),
        cmp(T0 + 3 * S, "A"),  # complaints on A too: double trouble on A only
        cmp(T0 + 4 * S, "C"),
        cmp(T0 + 5 * S, "C"),
        inv(T0 + 6 * S, "A", 10),
    ]  # stock back: resolves
    out = run([rule(**neg), rule(**surge), rule(**double)], lines)
    assert [a for a in alerts(out) if a[0] == "double"] == [
        ("double", "firing", "A", 3),
        ("double", "resolved", "A", 6),
    ]


def test_correlate_over_correlate_and_by_tags():
    by_tag = dict(INCIDENT, id="incident", rules={"tags": ["payments"]}, breaker=None)
    top = dict(type="correlate", id="top", rules=["incident"], op=">=", value=1)  # global
    lines = [failed(T0 + i * S, "alipay", c) for c in ("E1", "E2", "E3") for i in range(2)]
    out = run([rule(**BURST), rule(**by_tag), rule(**top)], lines)
    assert [a[:2] for a in alerts(out) if a[0] in ("incident", "top")] == [("incident", "firing"), ("top", "firing")]


def test_shadow_alerts_are_never_inputs_of_live_rules():
    shadow = dict(BURST, mode="shadow")
    lines = [failed(T0 + i * S, "alipay", c) for c in ("E1", "E2", "E3") for i in range(2)]
    out = run([rule(**shadow), rule(**dict(INCIDENT, rules={"tags": ["payments"]}))], lines)
    assert [a for a in alerts(out) if a[0] == "incident"] == []
    out = run([rule(**shadow), rule(**dict(INCIDENT, rules={"tags": ["payments"]}, mode="shadow"))], lines)
    assert [a[:2] for a in alerts(out) if a[0] == "incident"] == [("incident", "firing")]


def test_a_cycle_is_refused():
    a = dict(type="correlate", id="a", rules=["b"], op=">=", value=1)
    b = dict(type="correlate", id="b", rules=["a"], op=">=", value=1)
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        Engine([rule(**a), rule(**b)])


def test_restore_at_any_point_keeps_the_correlate_state():
    lines = []
    for i in range(40):
        t = T0 + i * 20 * S
        lines += [
            failed(t, ["alipay", "card"][i % 2], f"E{i % 6}"),
            failed(t + S, ["alipay", "card"][i % 2], f"E{i % 6}"),
        ]
    rules = [rule(**BURST), rule(**INCIDENT)]
    whole = run(rules, lines)
    assert any(v["rule_id"] == "incident" for t, _, v in whole if t == "alerts")
    for cut in range(0, len(lines), 7):
        assert restored_run(lambda: [rule(**BURST), rule(**INCIDENT)], lines, cut) == whole, cut


def test_an_input_rule_changed_on_reload_stops_counting():
    eng = Engine([rule(**BURST), rule(**dict(INCIDENT, value=1))])
    out = [x for ln in [failed(T0, "alipay", "E1"), failed(T0 + S, "alipay", "E1")] for x in eng.process_line(ln)]
    assert [a[:2] for a in alerts(out) if a[0] == "incident"] == [("incident", "firing")]
    eng.replace_rules([rule(**dict(BURST, value=3)), rule(**dict(INCIDENT, value=1))])
    assert eng.runners["incident"].firing == {}
