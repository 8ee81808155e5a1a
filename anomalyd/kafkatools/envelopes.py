"""Produce replay envelopes to Kafka with the contract's keys (kafka-python)."""

from __future__ import annotations

import json
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
