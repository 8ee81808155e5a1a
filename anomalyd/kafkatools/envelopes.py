"""Produce replay envelopes to Kafka with the contract's keys (kafka-python)."""

from __future__ import annotations

import json
import time
from typing import Iterable

from .admin import produce_jsonl

KEY_FIELD = {
    "orders": "sku",
    "inventory": "sku",
    "payments": "payment_id",
    "complaints": "ticket_id",
    "operator-actions": "rule_id",  # a rule's actions stay in order
}


def envelope_records(envelopes: Iterable[dict], topic_names: dict[str, str] | None = None):
    """{"topic", "value"} -> (topic, key, value bytes). Orders are keyed by
    sku (the contract allows order_id or sku): a SKU's orders stay in order."""
    names = topic_names or {}
    for env in envelopes:
        topic = env["topic"]
        value = env["value"]
        key = value.get(KEY_FIELD.get(topic, ""), None) if isinstance(value, dict) else None
        raw = value.encode() if isinstance(value, str) else json.dumps(value, separators=(",", ":")).encode()
        yield names.get(topic, topic), (str(key) if key is not None else None), raw


def produce_envelopes(
    bootstrap: str,
    envelopes: Iterable[dict],
    topic_names: dict[str, str] | None = None,
    flush_every: int = 500,
    security: dict | None = None,
) -> int:
    """``security``: kafka client settings, e.g. ``Settings.kafka_security()``."""
    return produce_jsonl(bootstrap, envelope_records(envelopes, topic_names), security, flush_every=flush_every)


# Tansu's memory storage keeps one object per produced batch and a fetch lists
# all of a partition's objects, so live traffic sent in small batches slows
# the embedded broker down as it fills. At 2,000 events/s, a batch per
# partition every 250 ms kept it under a third of a core for 10 minutes; 5 ms
# batches took a whole core within the first (bench/README.md, issue 15).
LIVE_BATCH_MS = 250


def produce_envelopes_live(
    bootstrap: str,
    envelopes: Iterable[dict],
    topic_names: dict[str, str] | None = None,
    security: dict | None = None,
    batch_ms: int = LIVE_BATCH_MS,
) -> int:
    """Send each envelope when the wall clock reaches its ``ts`` (epoch ms),
    batched per partition for ``batch_ms``; return the count."""

    def paced():
        for env in envelopes:
            wait = env["value"]["ts"] / 1000 - time.time()
            if wait > 0.002:
                time.sleep(wait)
            yield from envelope_records([env], topic_names)

    return produce_jsonl(bootstrap, paced(), security, linger_ms=batch_ms, batch_bytes=1 << 20)
