"""Synchronous Kafka tooling (topic admin, bulk produce, read-to-idle consume).

This is the only module in anomalyd that imports kafka-python.  Everything
here is blocking and meant for CLIs, tests, seeding and replay tools, not for
the streaming hot path.

``security`` arguments are passed through verbatim as kafka-python client
settings, e.g. ``{"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
"sasl_plain_username": ..., "sasl_plain_password": ..., "ssl_cafile": ...}``.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable, Mapping, Optional, Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors

__all__ = [
    "ensure_topics",
    "topic_partitions",
    "produce_jsonl",
    "consume_all",
    "Record",
]

log = logging.getLogger(__name__)

# (topic, partition, offset, key, value)
Record = tuple[str, int, int, Optional[str], Optional[bytes]]

_CLIENT_ID = "anomalyd-io"


def _sec(security: Optional[Mapping]) -> dict:
    return dict(security or {})


def _admin(bootstrap: str, security: Optional[Mapping], timeout_s: float) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=_CLIENT_ID,
        request_timeout_ms=int(timeout_s * 1000),
        **_sec(security),
    )


def topic_partitions(
    bootstrap: str,
    topics: Optional[Iterable[str]] = None,
    security: Optional[Mapping] = None,
    timeout_s: float = 30.0,
) -> dict[str, int]:
    """Partition count per topic from broker metadata (all topics if ``topics`` is None).

    Topics that do not exist are left out of the result.
    """
    admin = _admin(bootstrap, security, timeout_s)
    try:
        wanted = None if topics is None else list(topics)
        if wanted is not None:
            existing = set(admin.list_topics())
            wanted = [t for t in wanted if t in existing]
            if not wanted:
                return {}
        return _partition_counts(admin, wanted)
    finally:
        admin.close()


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    configs: Optional[Mapping[str, Mapping[str, str]]] = None,
    security: Optional[Mapping] = None,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics in ``topics`` (name -> partitions) that do not exist yet.

    Idempotent: existing topics are left alone (their partition count is
    not changed; a mismatch is logged as a warning) and a concurrent creator
    winning the race (TopicAlreadyExists) is ignored.  ``configs`` maps topic
    name to topic configs (e.g. ``{"cleanup.policy": "compact"}``) used only
    when that topic is created.  Returns the names actually created.
    """
    configs = configs or {}
    for name, n in topics.items():
        if int(n) < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {n!r}")
    admin = _admin(bootstrap, security, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = {name: int(n) for name, n in topics.items() if name not in existing}
        for name in set(topics) & existing:
            have = _partition_counts(admin, [name]).get(name)
            if have is not None and have != int(topics[name]):
                log.warning(
                    "topic %s exists with %d partitions (wanted %d); leaving it as is",
                    name,
                    have,
                    topics[name],
                )
        if not missing:
            return []
        request = {
            name: {
                "num_partitions": n,
                "replication_factor": replication_factor,
                "configs": {str(k): str(v) for k, v in (configs.get(name) or {}).items()},
            }
            for name, n in missing.items()
        }
        result = admin.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        created: list[str] = []
        for entry in result.get("topics", []):
            code = entry.get("error_code", 0)
            name = entry.get("name")
            if code == 0:
                created.append(name)
                continue
            err = kerrors.for_code(code)
            if err is kerrors.TopicAlreadyExistsError:
                continue
            raise err(f"creating topic {name!r}: {entry.get('error_message') or err.__name__}")
        if created:
            admin.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
        return sorted(created)
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, topics: Optional[Sequence[str]]) -> dict[str, int]:
    return {
        t["name"]: len(t.get("partitions") or [])
        for t in admin.describe_topics(None if topics is None else list(topics))
        if t.get("error_code", 0) == 0
    }


def produce_jsonl(
    bootstrap: str,
    lines: Iterable[tuple[str, Optional[str], bytes]],
    security: Optional[Mapping] = None,
    *,
    linger_ms: int = 5,
    timeout_s: float = 60.0,
    flush_every: int | None = None,
    batch_bytes: int = 16384,
) -> int:
    """Produce ``(topic, key, value)`` tuples with acks=all; flush; return the count.

    ``key`` is a str (UTF-8 encoded; same key -> same partition with the
    default partitioner) or None.  ``value`` is raw bytes (typically one JSON
    line).  Raises the first send error after flushing, if any.
    """
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=_CLIENT_ID,
        acks="all",
        linger_ms=linger_ms,
        batch_size=batch_bytes,
        request_timeout_ms=int(timeout_s * 1000),
        **_sec(security),
    )
    errors: list[BaseException] = []
    n = 0
    try:
        for topic, key, value in lines:
            if isinstance(value, str):
                value = value.encode("utf-8")
            fut = producer.send(
                topic,
                key=key.encode("utf-8") if key is not None else None,
                value=value,
            )
            fut.add_errback(errors.append)
            n += 1
            if errors:
                break
            if flush_every and n % flush_every == 0:
                # Keeps topics in step: without it one topic's batches can reach
                # the broker seconds after another's, which in a fast replay of
                # history means minutes of event time.
                producer.flush(timeout=timeout_s)
        producer.flush(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    if errors:
        raise errors[0]
    return n


def consume_all(
    bootstrap: str,
    topics: Iterable[str],
    timeout_s: float = 30.0,
    max_records: Optional[int] = None,
    security: Optional[Mapping] = None,
    *,
    idle_s: float = 1.0,
    first_record_wait_s: float = 5.0,
    since_ms: Optional[int] = None,
) -> list[Record]:
    """Read every partition of ``topics`` from the beginning until idle.

    Stops when no new record arrived for ``idle_s`` (or, before the first
    record, for ``first_record_wait_s``), when ``max_records`` were read, or
    after ``timeout_s`` overall.  End offsets (ListOffsets latest) are
    deliberately not used: Tansu under-reports them.

    Uses manual assignment (no consumer group, nothing committed).  Returns
    ``(topic, partition, offset, key, value)`` sorted by topic, partition,
    offset; keys are decoded as UTF-8 (invalid bytes replaced).
    With ``since_ms``, only records whose Kafka timestamp is at or after it
    (read from the beginning and filtered: Tansu's timestamp lookups are not
    relied on either).
    """
    topics = list(topics)
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=_CLIENT_ID,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        **_sec(security),
    )
    out: list[Record] = []
    try:
        tps: list[TopicPartition] = []
        pending = set(topics)
        while pending:
            for topic in list(pending):
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    tps.extend(TopicPartition(topic, p) for p in sorted(parts))
                    pending.discard(topic)
            if pending:
                if time.monotonic() >= deadline:
                    raise kerrors.UnknownTopicOrPartitionError(f"no metadata for topic(s) {sorted(pending)}")
                time.sleep(0.1)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

        last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = idle_s if out else max(idle_s, first_record_wait_s)
            if now - last_progress >= wait:
                break
            budget_ms = int(max(0.0, min(0.25, deadline - now)) * 1000)
            limit = None if max_records is None else max_records - len(out)
            batch = consumer.poll(timeout_ms=budget_ms, **({"max_records": limit} if limit else {}))
            got = 0
            for _tp, records in batch.items():
                for rec in records:
                    if since_ms is not None and rec.timestamp is not None and rec.timestamp < since_ms:
                        got += 1  # progress, though filtered out
                        continue
                    key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
                    out.append((rec.topic, rec.partition, rec.offset, key, rec.value))
                    got += 1
            if got:
                last_progress = time.monotonic()
            if max_records is not None and len(out) >= max_records:
                del out[max_records:]
                break
    finally:
        consumer.close()
    out.sort(key=lambda r: (r[0], r[1], r[2]))
    return out
