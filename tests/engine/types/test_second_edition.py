"""Rule language, second edition (contract 3b): expr, for, aggregate, surge
with fn / direction / offset, resolved_message. Through the engine, as
replay runs it, and across a snapshot restore at every point."""

from __future__ import annotations

import pytest

from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import RuleLoadError, load_rules
from tests.helpers import MIN, T0, alerts, cmp, commands, inv, line, pay, restored_run, rule, run

S = 1000


def o(ts: int, sku: str = "S", unit_price=10, quantity=1, **kw):
    return line(
        "orders",
        ts,
        order_id=kw.pop("order_id", "O"),
        sku=sku,
        quantity=quantity,
        unit_price=unit_price,
        status=kw.pop("status", "created"),
        **kw,
    )


def values(outs):
    return [(v["status"], v["value"]) for t, _, v in outs if t == "alerts"]


# -- expressions ---------------------------------------------------------------

FLOOR = dict(
    type="threshold",
    source="orders",
    expr="attrs.floor_price - unit_price",
    op=">",
    value=0,
    group_by=["sku"],
    where=[{"expr": "size(promo_codes) >= 2"}, {"expr": "unit_price * quantity", "op": ">", "value": 100}],
)


def test_price_below_floor_mixes_ints_and_floats_and_filters_with_expressions():
    lines = [
        o(T0, unit_price=80.5, quantity=2, promo_codes=["A", "B"], attrs={"floor_price": 100}),  # fires: 19.5
        o(T0 + S, unit_price=80.5, quantity=2, promo_codes=["A"], attrs={"floor_price": 100}),  # one code: filtered
        o(T0 + 2 * S, unit_price=40, quantity=2, promo_codes=["A", "B"], attrs={"floor_price": 100}),  # 80 <= 100
        o(T0 + 3 * S, unit_price=120, quantity=1, promo_codes=["A", "B"], attrs={"floor_price": 100}),  # resolves
    ]
    out = run([rule(**FLOOR)], lines)
    assert values(out) == [("firing", 19.5), ("resolved", -20.0)]


def test_an_expression_without_a_value_is_false_or_no_verdict_never_a_crash():
    r = rule(**FLOOR)
    eng = Engine([r])
    out = []
    out += eng.process_line(o(T0, unit_price=80.5, quantity=2, promo_codes=["A", "B"], attrs={"floor_price": 100}))
    # No attrs: the value has none, so no verdict (the alert neither fires nor resolves).
    out += eng.process_line(o(T0 + S, unit_price=120, quantity=2, promo_codes=["A", "B"]))
    # No promo_codes: the condition is false, the event is not this rule's.
    out += eng.process_line(o(T0 + 2 * S, unit_price=120, quantity=2, attrs={"floor_price": 100}))
    assert values(out) == [("firing", 19.5)]
    runner = eng.runners["r"]
    assert sum(e.missing for e in runner.exprs) >= 2 and runner.expr_errors() == 0
    # A failing expression (a string attrs value times a number) is counted, not raised.
    bad = rule(**{**FLOOR, "id": "b", "where": [], "expr": "attrs.floor_price * 2"})
    eng = Engine([bad])
    assert eng.process_line(o(T0, attrs={"floor_price": "cheap"})) == []
    assert eng.runners["b"].expr_errors() == 1


def test_expression_load_errors_point_into_the_expression(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - id: a\n"
        "    source: orders\n"
        "    type: threshold\n"
        '    expr: "unit_prize * quantity"\n'
        "    op: '>'\n"
        "    value: 1\n"
        "    where:\n"
        '      - {expr: "sku * 2"}\n'
        '      - {expr: "unit_price +"}\n'
        '      - {expr: "unit_price"}\n'
    )
    with pytest.raises(RuleLoadError) as exc:
        load_rules(tmp_path)
    text = [str(e) for e in exc.value.errors]
    assert any(
        t.startswith(f"{tmp_path}/r.yaml:5:12: expr:") and "unit_prize" in t and "unit_price" in t for t in text
    ), text
    assert any(t.startswith(f"{tmp_path}/r.yaml:9:") for t in text), text
    assert any(t.startswith(f"{tmp_path}/r.yaml:10:") for t in text), text
    assert any(t.startswith(f"{tmp_path}/r.yaml:11:") and "true or false" in t for t in text), text
    assert len(text) == 4


# -- for -------------------------------------------------------------------------

NEG = dict(
    type="threshold",
    source="inventory",
    field="available",
    op="<",
    value=0,
    group_by=["sku"],
    breaker={"action": "pause_sales", "scope": ["sku"], "ttl": "30m"},
)


def test_for_fires_at_the_scheduled_moment_with_started_at_when_it_became_true():
    r = rule(**NEG, **{"for": "2m"})
    lines = [inv(T0, "A", -5), inv(T0 + 30 * S, "B", 10), inv(T0 + 3 * MIN, "B", 10)]
    out = run([r], lines)
    fired = [v for t, _, v in out if t == "alerts"]
    assert alerts(out) == [("r", "firing", "A", 120)]  # at T0 + 2m, moved there by B's event
    assert fired[0]["started_at"] == "2026-06-17T16:00:00.000Z" and fired[0]["value"] == -5
    assert commands(out) == [("open", "A")]


def test_for_an_evaluation_that_finds_it_false_ends_the_pending_episode_without_a_record():
    r = rule(**NEG, **{"for": "2m"})
    lines = [inv(T0, "A", -5), inv(T0 + MIN, "A", 3), inv(T0 + 5 * MIN, "B", 1)]
    assert run([r], lines) == []


def test_for_on_a_windowed_rule_uses_its_scheduled_moments():
    count = dict(
        type="count",
        source="payments",
        window="10m",
        op=">=",
        value=2,
        group_by=["merchant_id"],
        where=[{"field": "status", "op": "==", "value": "failed"}],
    )
    # Two failures at 0 and 1m hold from 1m; the first ages out at 10m (a
    # scheduled moment), before `for: 10m` has elapsed: nothing fires.
    lines = [pay(T0, "failed", merchant_id="M"), pay(T0 + MIN, "failed", merchant_id="M")]
    lines += [pay(T0 + i * MIN, "succeeded", merchant_id="X") for i in range(2, 25)]
    assert alerts(run([rule(**count, **{"for": "10m"})], lines)) == []
    assert alerts(run([rule(**count, **{"for": "5m"})], lines)) == [
        ("r", "firing", "M", 360),
        ("r", "resolved", "M", 600),
    ]


def test_for_on_absence_fires_after_the_silence_and_the_extra_wait():
    ab = dict(type="absence", source="orders", window="5m", group_by=["channel"], **{"for": "2m"})
    lines = [o(T0, channel="web"), o(T0, channel="app")]
    lines += [o(T0 + i * MIN, channel="app") for i in range(1, 10)]
    assert alerts(run([rule(**ab)], lines)) == [("r", "firing", "web", 420)]


# -- aggregate ----------------------------------------------------------------------


def agg(fn, **kw):
    base = dict(type="aggregate", source="payments", fn=fn, field="amount", window="10m", group_by=["merchant_id"])
    return rule(**{**base, **kw})


@pytest.mark.parametrize(
    "fn,op,value,expect",
    [
        ("sum", ">", 250, 300),
        ("avg", ">", 90, 100),
        ("max", ">=", 150, 150),
        ("min", "<", 60, 50),
    ],
)
def test_aggregate_functions_over_the_sliding_window(fn, op, value, expect):
    lines = [pay(T0 + i * MIN, amount=a, merchant_id="M") for i, a in enumerate([100, 50, 150])]
    lines += [pay(T0 + i * MIN, merchant_id="X") for i in range(3, 20)]  # time moves on: the window empties
    out = run([agg(fn, op=op, value=value)], lines)
    got = [(v["status"], v["value"], v["details"]["fn"]) for t, _, v in out if t == "alerts"]
    assert got[0] == ("firing", expect, fn)
    assert got[-1][0] == "resolved"


def test_aggregate_min_count_and_distinct_customers_per_coupon():
    coupon = dict(
        type="aggregate",
        source="orders",
        fn="distinct",
        field="customer_id",
        window="10m",
        group_by=["attrs.coupon"],
        op=">=",
        value=3,
        min_count=4,
        message="{aggregate} customers in {count} orders",
    )
    lines = [o(T0 + i * S, customer_id=c, attrs={"coupon": "C1"}) for i, c in enumerate(["a", "b", "c"])]
    assert run([rule(**coupon)], lines) == []  # 3 distinct, but only 3 orders < min_count
    lines.append(o(T0 + 5 * S, customer_id="a", attrs={"coupon": "C1"}))
    out = run([rule(**coupon)], lines)
    assert [v["message"] for t, _, v in out if t == "alerts"] == ["3 customers in 4 orders"]


def test_distinct_state_is_capped_and_counted(monkeypatch):
    from anomalyd.engine import windows

    monkeypatch.setattr(windows, "DISTINCT_CAP", 5)
    r = rule(type="aggregate", source="orders", fn="distinct", field="customer_id", window="10m", op=">=", value=100)
    eng = Engine([r])
    for i in range(20):
        eng.process_line(o(T0 + i, customer_id=f"c{i}"))
    runner = eng.runners["r"]
    assert runner.capped() == 15
    st = runner.store.get("")
    assert len(st.tot[1]) == 5 and st.tot[0] == 20  # a lower bound of the distinct values, every event counted


# -- surge, extended -------------------------------------------------------------------


def test_surge_down_on_summed_takings_window_over_window():
    drop = dict(
        type="surge",
        source="payments",
        fn="sum",
        field="amount",
        window="10m",
        pct=50,
        direction="down",
        min_count=3,
        where=[{"field": "status", "op": "==", "value": "succeeded"}],
    )
    lines = [pay(T0 + i * MIN, amount=100) for i in range(20)]  # 1000 per 10m
    lines += [pay(T0 + (20 + i) * MIN, amount=30) for i in range(20)]  # 300 per 10m
    got = [(v["status"], v["details"]["previous"]) for t, _, v in run([rule(**drop)], lines) if t == "alerts"]
    assert got and got[0][0] == "firing"


def test_surge_offset_baseline_compares_with_the_same_window_a_day_ago():
    day = 24 * 60 * MIN
    base = dict(
        type="surge",
        source="complaints",
        window="10m",
        pct=50,
        min_count=5,
        group_by=["sku"],
        baseline="offset",
        offset="1d",
    )
    # Every day a peak of 10 complaints around T0 + 12h: not an anomaly the second day; 30 on the third is.
    lines = []
    for d, n in ((0, 10), (1, 10), (2, 30)):
        lines += [cmp(T0 + d * day + 12 * 60 * MIN + i * 10 * S, "A") for i in range(n)]
        lines += [cmp(T0 + d * day + h * 60 * MIN, "B") for h in range(24)]
    lines.sort(key=lambda ln: __import__("json").loads(ln)["value"]["ts"])
    out = run([rule(**base)], lines)
    fired = [(v["group"]["sku"], v["started_at"][:13]) for t, _, v in out if t == "alerts" and v["status"] == "firing"]
    assert fired == [("A", "2026-06-20T04")], fired  # day 2's noon peak only (T0 is 16:00Z)
    assert all(v["details"]["previous"] > 0 for t, _, v in out if t == "alerts" and v["status"] == "firing")


def test_offset_history_is_bounded_by_slots_not_fine_buckets():
    r = rule(type="surge", source="complaints", window="10m", pct=50, baseline="offset", offset="7d", group_by=["sku"])
    eng = Engine([r])
    eng.process_line(cmp(T0, "A"))
    hist = eng.runners["r"].store.get("A").hist
    assert hist.n == 7 * 24 * 60 + 10 + 2  # a bucket of 1m for a week, plus the window
    assert hist.value is None and len(hist.count) * hist.count.itemsize == 4 * hist.n  # 40 KB


def test_surge_keys_that_do_not_fit_are_load_errors():
    with pytest.raises(ValueError, match="needs an offset"):
        rule(type="surge", source="complaints", window="5m", pct=50, baseline="offset")
    with pytest.raises(ValueError, match="needs a field"):
        rule(type="surge", source="payments", window="5m", pct=50, fn="sum")
    with pytest.raises(ValueError, match="distinct cannot use"):
        rule(
            type="surge",
            source="orders",
            window="5m",
            pct=50,
            fn="distinct",
            field="sku",
            baseline="offset",
            offset="1d",
        )


# -- resolved_message ------------------------------------------------------------------


def test_resolved_records_have_their_own_wording():
    r = rule(**NEG, message="SKU {sku}: stock {value}", resolved_message="SKU {sku}: stock back to {value}")
    out = run([r], [inv(T0, "A", -5), inv(T0 + S, "A", 7)])
    assert [v["message"] for t, _, v in out if t == "alerts"] == ["SKU A: stock -5", "SKU A: stock back to 7"]
    default = run([rule(**NEG, message="SKU {sku}: stock {value}")], [inv(T0, "A", -5), inv(T0 + S, "A", 7)])
    assert [v["message"] for t, _, v in default if t == "alerts"][1] == "r resolved (sku=A): value 7 no longer < 0"


# -- restart from a snapshot at any point ---------------------------------------------


def _stream():
    lines = []
    for i in range(60):
        t = T0 + i * 20 * S
        lines.append(
            o(
                t,
                sku="S1" if i % 3 else "S2",
                unit_price=80.5 if i % 7 == 0 else 120,
                quantity=2,
                promo_codes=["A", "B"],
                customer_id=f"c{i % 5}",
                attrs={"floor_price": 100, "coupon": "K"},
            )
        )
        lines.append(pay(t + S, "succeeded" if i % 4 else "failed", amount=100 if i < 30 else 20, merchant_id="M"))
        lines.append(inv(t + 2 * S, "S1", -1 if 20 <= i < 30 else 5))
        lines.append(cmp(t + 3 * S, "S1"))
    return lines


RULES = [
    dict(FLOOR, id="floor"),
    dict(NEG, id="neg", **{"for": "1m"}),
    dict(
        type="aggregate",
        id="coupon",
        source="orders",
        fn="distinct",
        field="customer_id",
        window="5m",
        group_by=["attrs.coupon"],
        op=">=",
        value=4,
        **{"for": "30s"},
    ),
    dict(
        type="surge",
        id="takings",
        source="payments",
        fn="sum",
        field="amount",
        window="5m",
        pct=40,
        direction="down",
        where=[{"expr": "status == 'succeeded'"}],
    ),
    dict(
        type="surge",
        id="offset",
        source="complaints",
        window="2m",
        pct=10,
        baseline="offset",
        offset="5m",
        direction="both",
    ),
]


def test_restore_at_any_point_gives_the_same_output_with_the_new_types():
    rules = [rule(**r) for r in RULES]
    lines = _stream()
    whole = run(rules, lines)
    assert {v["rule_id"] for t, _, v in whole if t == "alerts"} >= {"floor", "neg", "coupon", "takings"}
    for cut in range(0, len(lines), 17):
        assert restored_run(lambda: [rule(**r) for r in RULES], lines, cut) == whole, cut
