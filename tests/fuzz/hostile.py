"""A deterministic generator of hostile input records, shared by the worker
fuzz test (CI size) and bench/bench_fuzz.py (full size).

Every kind the issue names, interleaved with valid events so the engine's
windows and the worker's reorder buffer stay busy: random bytes, invalid
UTF-8, empty values, non-objects, deep nesting, huge strings, numbers as
strings, booleans for numbers, NaN and infinities, huge integers, timestamps
far in the past and the future and malformed, duplicate event ids, every
required field missing in turn, unknown extra fields.
"""

from __future__ import annotations

import json
import random
import time
from typing import Iterator

BASE = {
    "orders": {
        "order_id": "O-1",
        "sku": "SKU-1",
        "quantity": 2,
        "unit_price": 19.9,
        "status": "paid",
        "merchant_id": "M-1",
        "channel": "app",
    },
    "inventory": {"sku": "SKU-1", "available": 40, "warehouse": "WH-1"},
    "payments": {"payment_id": "P-1", "order_id": "O-1", "amount": 39.8, "status": "succeeded", "merchant_id": "M-1"},
    "complaints": {"ticket_id": "T-1", "category": "quality", "sku": "SKU-1"},
}
SOURCES = list(BASE)

# kind -> weight; "valid" keeps the stream moving, the rest is hostile.
KINDS = {
    "valid": 30,
    "missing_field": 10,
    "wrong_type": 10,
    "number_as_string": 5,
    "nan_inf": 5,
    "huge_int": 3,
    "ts_past": 4,
    "ts_future": 4,
    "ts_garbage": 4,
    "duplicate_id": 5,
    "extra_fields": 4,
    "random_bytes": 4,
    "bad_utf8": 2,
    "empty": 1,
    "not_object": 3,
    "deep_nesting": 0.2,
    "huge_string": 0.2,
}


def hostile_records(
    n: int, seed: int = 7, t0: int | None = None, step_ms: int = 50, big: bool = True
) -> Iterator[tuple[str, bytes, str]]:
    """Yield n (source, raw value, kind). Valid events advance by up to
    `step_ms` of event time, from `t0` (default: live traffic, ending about
    now by the wall clock, as the service sees it). `big` allows the
    multi-megabyte records (deep nesting, huge strings); without it they stay
    under Kafka's default 1 MB a record."""
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    ids: list[str] = []
    now = int(time.time() * 1000)
    ts = now - n * step_ms // 2 if t0 is None else t0
    for i in range(n):
        source = SOURCES[i % 4]
        kind = rng.choices(kinds, weights)[0]
        ts += rng.randint(0, step_ms)
        rec: dict = {"event_id": f"h-{i}", "ts": ts, **BASE[source]}
        if source == "inventory":
            rec["available"] = rng.choice([40, 3, 0, -5])  # negative stock fires now and then
        if source == "orders":
            rec["unit_price"] = rng.choice([19.9, 19.9, 6.5, 55.0])
        raw: bytes | None = None
        if kind == "valid":
            ids.append(rec["event_id"])
        elif kind == "missing_field":
            del rec[rng.choice(list(rec))]
        elif kind == "wrong_type":
            f = rng.choice(list(rec))
            rec[f] = rng.choice([True, None, [], {}, [1, 2], {"x": 1}, -1.5])
        elif kind == "number_as_string":
            f = rng.choice([k for k, v in rec.items() if isinstance(v, (int, float))])
            rec[f] = str(rec[f])
        elif kind == "nan_inf":
            f = rng.choice([k for k, v in rec.items() if isinstance(v, (int, float))])
            rec[f] = rng.choice([float("nan"), float("inf"), float("-inf")])
        elif kind == "huge_int":
            f = rng.choice([k for k, v in rec.items() if isinstance(v, (int, float))])
            rec[f] = rng.choice([2**70, -(2**70), 10**400])
        elif kind == "ts_past":
            rec["ts"] = rng.choice([0, 1, ts - 3_600_000, ts - 86_400_000 * 365, "1970-01-01T00:00:00Z", -1])
        elif kind == "ts_future":  # ahead of the stream; all but the first also of the wall clock
            rec["ts"] = rng.choice(
                [
                    ts + 86_400_000 * 2,
                    now + 86_400_000 * 2,
                    now + 86_400_000 * 3650,
                    253_402_300_799_999,
                    10**15,
                    "9999-12-31T23:59:59Z",
                ]
            )
        elif kind == "ts_garbage":
            rec["ts"] = rng.choice(["yesterday", "2026-13-45T00:00:00Z", "", "2026-06-18", "NaN", 1.5e300, "1e3"])
        elif kind == "duplicate_id" and ids:
            rec["event_id"] = rng.choice(ids[-50:])
        elif kind == "extra_fields":
            rec.update({"zzz": "x" * 100, "nested": {"a": [1, {"b": None}]}, "attrs": {"k": rng.choice(["v", 1, 2.5])}})
        elif kind == "random_bytes":
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        elif kind == "bad_utf8":
            raw = b'{"event_id":"\xff\xfe","ts":' + str(ts).encode() + b"}"
        elif kind == "empty":
            raw = b""
        elif kind == "not_object":
            raw = rng.choice([b"[]", b"[1,2,3]", b'"text"', b"42", b"null", b"true"])
        elif kind == "deep_nesting":
            depth = 200_000 if big else 100_000  # a Kafka record stays under 1 MB
            raw = rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
        elif kind == "huge_string":
            rec[rng.choice(["event_id", "sku", "zzz"])] = "x" * (4_000_000 if big else 400_000)
        if raw is None:
            raw = json.dumps(rec, allow_nan=True).encode()
        yield source, raw, kind
