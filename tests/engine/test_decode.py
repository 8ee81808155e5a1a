"""Input validation: strict JSON types; every bad record becomes a dead letter with a reason."""

import json

import pytest

from anomalyd.engine.decode import Rejected, decode_line, decode_value
from anomalyd.engine.engine import Engine

GOOD = {
    "orders": {
        "event_id": "e1",
        "ts": 1781712000000,
        "order_id": "O1",
        "sku": "S1",
        "quantity": 2,
        "unit_price": 9.5,
        "status": "paid",
    },
    "inventory": {"event_id": "e2", "ts": "2026-06-18T00:00:00+08:00", "sku": "S1", "available": -5},
    "payments": {
        "event_id": "e3",
        "ts": 1781712000000,
        "payment_id": "P1",
        "order_id": "O1",
        "amount": 0,
        "status": "failed",
    },
    "complaints": {"event_id": "e4", "ts": "2026-06-17T16:00:00.5Z", "ticket_id": "T1", "category": "quality"},
}
REQUIRED = {
    "orders": ["event_id", "ts", "order_id", "sku", "quantity", "unit_price", "status"],
    "inventory": ["event_id", "ts", "sku", "available"],
    "payments": ["event_id", "ts", "payment_id", "order_id", "amount", "status"],
    "complaints": ["event_id", "ts", "ticket_id", "category"],
}


@pytest.mark.parametrize("topic", list(GOOD))
def test_valid_events_decode_with_ts_in_epoch_ms(topic):
    t, ev = decode_line(json.dumps({"topic": topic, "value": GOOD[topic]}))
    assert t == topic and isinstance(ev.ts, int) and ev.ts > 1_700_000_000_000


@pytest.mark.parametrize("topic,field", [(t, f) for t, fs in REQUIRED.items() for f in fs])
def test_every_required_field_missing_in_turn_is_rejected(topic, field):
    value = dict(GOOD[topic])
    del value[field]
    with pytest.raises(Rejected) as e:
        decode_value(topic, json.dumps(value))
    assert e.value.code == "missing_field" and field in e.value.reason


@pytest.mark.parametrize(
    "patch,reason",
    [
        ({"quantity": "2"}, 'quantity: expected an integer > 0, got "2"'),  # no coercion from strings
        ({"quantity": True}, "quantity: expected an integer > 0, got true"),  # booleans are not numbers
        ({"quantity": 0}, "quantity: expected an integer > 0, got 0"),
        ({"quantity": 1.5}, "quantity"),
        ({"unit_price": -1}, "unit_price: expected a number >= 0, got -1"),
        ({"unit_price": "9.5"}, 'unit_price: expected a number >= 0, got "9.5"'),
        ({"status": "shipped"}, 'status: expected one of created, paid, cancelled, refunded, got "shipped"'),
        ({"ts": "2026-06-18T00:00:00"}, "offset"),  # naive times are machine-dependent
        ({"ts": -1}, "1970"),
        ({"ts": 253402300800000}, "9999"),
        ({"ts": True}, "ts: must be RFC 3339 with an offset or epoch milliseconds, got true"),
        ({"ts": "ten minutes"}, 'got "ten minutes"'),
        ({"attrs": {"a": [1]}}, "attrs.a: expected a string or a number, got [1]"),
        ({"attrs": {"a": True}}, "attrs"),
        ({"promo_codes": "X"}, 'promo_codes: expected a list of strings, got "X"'),
        ({"promo_codes": [1]}, "promo_codes.0: expected a string, got 1"),
        ({"merchant_id": 5}, "merchant_id: expected a string, got 5"),
        # bounded sizes: a huge id would be a huge group key and a record Kafka refuses
        ({"sku": "x" * 400_000}, "sku: expected a string of at most 1024 characters, got 400000"),
        ({"event_id": "x" * 1025}, "event_id"),
        ({"event_id": ""}, 'event_id: expected a non-empty string, got ""'),
        ({"promo_codes": ["P"] * 65}, "promo_codes: expected at most 64 items, got 65"),
        ({"attrs": {f"k{i}": i for i in range(65)}}, "attrs"),
        ({"attrs": {"k": "v" * 1025}}, "attrs"),
    ],
)
def test_wrong_types_are_rejected_with_the_field_named(patch, reason):
    with pytest.raises(Rejected) as e:
        decode_value("orders", json.dumps({**GOOD["orders"], **patch}))
    assert reason in e.value.reason


@pytest.mark.parametrize("text", ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}'])
def test_nan_and_infinity_are_not_json(text):
    body = json.dumps(GOOD["orders"])[:-1] + ", " + text[1:]
    with pytest.raises(Rejected) as e:
        decode_value("orders", body)
    assert e.value.code == "invalid_json"


def test_unknown_fields_are_ignored_and_attrs_kept():
    ev = decode_value(
        "inventory", json.dumps({**GOOD["inventory"], "colour": "red", "attrs": {"lot": "A1", "temp": 3.5}})
    )
    assert ev.attrs == {"lot": "A1", "temp": 3.5} and not hasattr(ev, "colour")


def test_kcat_envelope_payload_is_the_value():
    kcat = {
        "topic": "inventory",
        "partition": 0,
        "offset": 7,
        "tstype": "create",
        "ts": 1,
        "key": "S1",
        "payload": json.dumps(GOOD["inventory"]),
    }
    topic, ev = decode_line(json.dumps(kcat))
    assert topic == "inventory" and ev.available == -5


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"\xff\xfe not utf-8", "not_utf8"),
        (b"", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (b'"just a string"', "not_object"),
        (b"null", "not_object"),
        (json.dumps({"event_id": "x"}).encode(), "missing_field"),
    ],
)
def test_hostile_values_go_to_dead_letter_with_original_and_reason(raw, code):
    eng = Engine([])
    [(topic, key, rec)] = eng.process_record("inventory", raw, partition=3, offset=42, key=b"S1")
    assert topic == "dead-letter" and key == "inventory"
    assert rec["reason_code"] == code and rec["reason"] and "\n" not in rec["reason"]
    assert rec["source_topic"] == "inventory" and rec["partition"] == 3 and rec["offset"] == 42 and rec["key"] == "S1"
    assert rec["original"].startswith(raw[:50].decode("utf-8", "replace"))
    assert eng.invalid[code] == 1


def test_unknown_topic_is_a_dead_letter():
    eng = Engine([])
    [(topic, _, rec)] = eng.process_record("refunds", json.dumps(GOOD["orders"]).encode())
    assert topic == "dead-letter" and rec["reason_code"] == "unknown_topic"


def test_replay_line_problems_name_the_line():
    eng = Engine([])
    [(_, _, rec)] = eng.process_line('{"topic": "orders"}', 12)
    assert rec["line"] == 12 and rec["reason_code"] == "bad_envelope" and rec["source_topic"] == "orders"
