"""Hostile input never crashes the engine; every record is accepted (counted)
or dead-lettered with a reason. Hypothesis generates the records."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from tests.fuzz import examples

RULES = load_rules("rules")
FIELDS = [
    "event_id",
    "ts",
    "sku",
    "available",
    "order_id",
    "quantity",
    "unit_price",
    "status",
    "payment_id",
    "amount",
    "ticket_id",
    "category",
    "merchant_id",
    "channel",
    "error_code",
    "method",
    "attrs",
    "promo_codes",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["paid", "failed", "succeeded", "2026-06-18T00:00:00+08:00", "12", "NaN", "-1", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(FIELDS), values, max_size=12)
TOPICS = ["orders", "inventory", "payments", "complaints", "refunds", ""]


def _dump(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def _check(eng: Engine, outs: list, before: int) -> None:
    after = sum(eng.consumed.values()) + sum(eng.invalid.values())  # future_ts is a dead letter too
    assert after == before + 1, "every record is counted exactly once, accepted or rejected"
    for topic, _key, value in outs:
        assert topic in ("alerts", "breaker-commands", "dead-letter")
        if topic == "dead-letter":
            assert value["reason"] and "\n" not in value["reason"] and value["reason_code"]
        json.dumps(value, allow_nan=False)  # every output is valid JSON


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), rec=records)
def test_structured_garbage(topic, rec):
    eng = Engine(RULES)
    outs = eng.process_record(topic, _dump(rec), partition=0, offset=1)
    _check(eng, outs, 0)


@settings(max_examples=examples(300), deadline=None)
@given(raw=st.binary(max_size=300))
def test_random_bytes(raw):
    eng = Engine(RULES)
    outs = eng.process_record("payments", raw)
    _check(eng, outs, 0)


@settings(max_examples=examples(200), deadline=None)
@given(
    topic=st.sampled_from(TOPICS[:4]),
    drop=st.integers(0, 20),
    ts=st.one_of(st.integers(), st.text(max_size=30), st.floats(allow_nan=True), st.none()),
)
def test_valid_records_with_one_field_dropped_or_a_hostile_ts(topic, drop, ts):
    base = {
        "orders": {"order_id": "o", "sku": "s", "quantity": 1, "unit_price": 1.5, "status": "paid"},
        "inventory": {"sku": "s", "available": -1},
        "payments": {"payment_id": "p", "order_id": "o", "amount": 3, "status": "failed"},
        "complaints": {"ticket_id": "t", "category": "c"},
    }[topic]
    rec = {"event_id": "e", "ts": ts, **base}
    keys = list(rec)
    if drop < len(keys):
        del rec[keys[drop]]
    eng = Engine(RULES)
    eng.process_record(topic, _dump({"event_id": "first", "ts": 1781712000000, **base}))  # sets the stream's time
    outs = eng.process_record(topic, _dump(rec))
    _check(eng, outs, 1)


def test_deep_nesting_huge_strings_and_duplicate_ids_in_one_stream():
    eng = Engine(RULES)
    hostile = [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        json.dumps({"event_id": "x" * 5_000_000, "ts": 1781712000000, "sku": "s", "available": 1}).encode(),
    ]
    for raw in hostile:
        before = sum(eng.consumed.values()) + sum(eng.invalid.values())
        outs = eng.process_record("inventory", raw)
        _check(eng, outs, before)
    dead = eng.process_record("inventory", hostile[0])[0][2]
    assert len(dead["original"]) < 70_000  # capped, not 400 kB
    assert eng.invalid["invalid_field"] == 1  # the 5 MB event_id: strings are bounded (1,024 characters)
    # duplicate event ids are accepted as separate events (ids are the producer's business)
    for _ in range(3):
        eng.process_record(
            "inventory", json.dumps({"event_id": "dup", "ts": 1781712000000, "sku": "s", "available": -5}).encode()
        )
    assert eng.consumed["inventory"] == 3
