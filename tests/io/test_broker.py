"""Real-broker tests for anomalyd.io (embedded Tansu + kafka-python tooling)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import pytest

from anomalyd.broker.embedded import (
    BrokerError,
    EmbeddedBroker,
    port_is_free,
    probe_metadata,
    wait_for_port_free,
)
from anomalyd.kafkatools.admin import consume_all, ensure_topics, produce_jsonl, topic_partitions

pytestmark = pytest.mark.kafka


def test_broker_starts_and_accepts_connections(broker):
    assert broker.running
    host, port = broker.bootstrap.rsplit(":", 1)
    assert int(port) == broker.port != 0
    meta = probe_metadata(host, int(port))
    assert meta["cluster_id"] == broker.cluster_id
    # advertised listener == listener, or clients get redirected elsewhere
    assert [(h, p) for _, h, p in meta["brokers"]] == [(host, int(port))]
    # a real client can talk to it too
    assert isinstance(topic_partitions(broker.bootstrap), dict)


def test_start_on_taken_port_fails_fast(broker):
    t0 = time.monotonic()
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=broker.port).start()
    assert time.monotonic() - t0 < 2.0
    assert broker.running


def test_ensure_topics_creates_with_partitions_and_is_idempotent(broker, topic_name):
    wanted = {topic_name("a"): 1, topic_name("b"): 3, topic_name("c"): 4}
    configs = {topic_name("a"): {"cleanup.policy": "compact"}}
    created = ensure_topics(broker.bootstrap, wanted, configs=configs)
    assert sorted(created) == sorted(wanted)
    assert topic_partitions(broker.bootstrap, wanted) == wanted

    # idempotent: nothing created, nothing changed, no error
    assert ensure_topics(broker.bootstrap, wanted) == []
    # a different partition count for an existing topic is left alone
    name = next(iter(wanted))
    assert ensure_topics(broker.bootstrap, {name: 8}) == []
    assert topic_partitions(broker.bootstrap, wanted) == wanted
    # mixed existing + new
    extra = topic_name("d")
    assert ensure_topics(broker.bootstrap, {**wanted, extra: 2}) == [extra]
    assert topic_partitions(broker.bootstrap, [extra]) == {extra: 2}


def test_produce_consume_roundtrip_1000_records_4_partitions(broker, topic_name):
    topic = topic_name()
    ensure_topics(broker.bootstrap, {topic: 4})
    sent = [(topic, f"store-{i % 37}", f'{{"seq": {i}, "amount": {i * 3}}}'.encode()) for i in range(1000)]
    t0 = time.monotonic()
    assert produce_jsonl(broker.bootstrap, sent) == 1000
    t1 = time.monotonic()
    records = consume_all(broker.bootstrap, [topic], timeout_s=30, idle_s=1.0)
    t2 = time.monotonic()
    print(f"\nproduce 1000: {t1 - t0:.2f}s, consume_all: {t2 - t1:.2f}s (incl. {1.0}s idle)")

    assert len(records) == 1000
    assert sorted((k, v) for _, _, _, k, v in records) == sorted((k, v) for _, k, v in sent)

    partitions_of_key = defaultdict(set)
    offsets = defaultdict(list)
    for t, p, off, k, _v in records:
        assert t == topic
        partitions_of_key[k].add(p)
        offsets[p].append(off)
    assert set(offsets) == {0, 1, 2, 3}
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), "key split across partitions"
    for p, offs in offsets.items():
        assert offs == list(range(len(offs))), f"partition {p} offsets not contiguous from 0"

    # per-key order is preserved
    seq_by_key = defaultdict(list)
    for _t, _p, _off, k, v in records:
        seq_by_key[k].append(int(v.split(b'"seq": ')[1].split(b",")[0]))
    assert all(s == sorted(s) for s in seq_by_key.values())

    # max_records stops early
    assert len(consume_all(broker.bootstrap, [topic], timeout_s=10, max_records=10)) == 10


def test_consume_all_empty_topic_returns_quickly(broker, topic_name):
    topic = topic_name()
    ensure_topics(broker.bootstrap, {topic: 2})
    t0 = time.monotonic()
    assert consume_all(broker.bootstrap, [topic], timeout_s=10, first_record_wait_s=1.0) == []
    assert time.monotonic() - t0 < 5.0


def test_aiokafka_consumer_group_join_and_read(broker, topic_name):
    from aiokafka import AIOKafkaConsumer

    topic = topic_name()
    ensure_topics(broker.bootstrap, {topic: 4})
    produce_jsonl(broker.bootstrap, ((topic, f"k{i}", b"%d" % i) for i in range(200)))
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[float, float, int, dict]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=8000,
            heartbeat_interval_ms=1000,
        )
        t0 = time.monotonic()
        await consumer.start()
        try:
            seen = 0
            t_join = None
            while seen < 200 and time.monotonic() - t0 < 30:
                batch = await consumer.getmany(timeout_ms=500)
                if t_join is None and consumer.assignment():
                    t_join = time.monotonic() - t0
                seen += sum(len(v) for v in batch.values())
            t_read = time.monotonic() - t0
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
            return (t_join if t_join is not None else -1.0), t_read, seen, committed
        finally:
            await consumer.stop()

    t_join, t_read, seen, committed = asyncio.run(run())
    print(f"\naiokafka group join: {t_join:.2f}s, 200 records read after {t_read:.2f}s")
    assert seen == 200
    assert 0 <= t_join < 15
    assert sorted(committed) == [0, 1, 2, 3]
    assert sum(committed.values()) == 200


def test_stop_frees_port_for_a_new_broker(topic_name):
    first = EmbeddedBroker(port=0).start()
    port = first.port
    try:
        topic = topic_name()
        ensure_topics(first.bootstrap, {topic: 1})
        produce_jsonl(first.bootstrap, [(topic, "k", b"v")])
    finally:
        t0 = time.monotonic()
        first.stop()
    assert not first.running
    assert wait_for_port_free("127.0.0.1", port, timeout=10.0)
    print(f"\nport free {time.monotonic() - t0:.2f}s after stop()")
    with EmbeddedBroker(port=port) as second:
        assert second.bootstrap == f"127.0.0.1:{port}"
        meta = probe_metadata("127.0.0.1", port)
        assert meta["cluster_id"] == second.cluster_id != first.cluster_id
        # memory storage: the new broker starts empty
        assert topic not in topic_partitions(second.bootstrap)
    assert wait_for_port_free("127.0.0.1", port, timeout=10.0)
    assert port_is_free("127.0.0.1", port)
