"""Scale-out shards, without Kafka: repartitioned records and watermarks are
fed in the orders a broker can deliver them (the real broker: tests/io/test_scaleout.py).

A shard starts its engine where replay starts, at the smallest ts of every
input partition; and a shard being assigned takes nothing before its position
is set."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from aiokafka import TopicPartition

from anomalyd.engine.decode import decode_value
from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from anomalyd.io.checkpoint_store import CheckpointStore
from anomalyd.io.records import (
    ORIGIN_HEADER,
    VALIDATED_HEADER,
    WATERMARK_KEY,
    Origin,
    Watermark,
    WatermarkEntry,
    encode_event,
)
from anomalyd.io.runtime import _Listener
from anomalyd.io.sharded import Shard, Shards, scaleout_worker

T0 = 1781712000000
INV, ORD = ("inventory", 0), ("orders", 0)


def _worker(tmp_path, idle_s: float = 0.5) -> tuple[Shards, Shard]:
    rules = load_rules("rules")
    rt = scaleout_worker(
        make_engine=lambda: Engine(rules),
        repartition_topic="routed",
        shard_count=1,
        checkpoints=CheckpointStore("127.0.0.1:1", "state"),
        bootstrap="127.0.0.1:1",
        input_topics={"inventory": "inventory", "orders": "orders"},
        output_topics={},
        group_id="g",
        log_alerts=False,
    )
    rt.producer = None  # not started: shards opened here write no checkpoints
    w = rt.stage("shard").strategy
    w.origins = [INV, ORD]
    eng = w.make_engine()
    eng.set_shard(0, 1)
    return w, Shard(0, eng, idle_s, w.origins)


def _order(ts: int) -> dict:
    return {
        "event_id": f"o{ts}",
        "ts": ts,
        "order_id": "O1",
        "sku": "S2",
        "quantity": 1,
        "unit_price": 10.0,
        "status": "paid",
        "channel": "app",
    }


def _record(origin, offset: int, value: dict, routed: int = 0):
    """A record as the router sends it: the validated event, its origin in a header."""
    ev = decode_value(origin[0], json.dumps(value))
    return SimpleNamespace(
        key=None,
        value=encode_event(ev),
        offset=routed,
        headers=[(ORIGIN_HEADER, Origin(origin[0], origin[1], offset).encode()), (VALIDATED_HEADER, b"1")],
    )


def _marker(*entries, routed: int = 0):
    # (topic, partition, next offset, max ts, min ts since the last watermark, caught up)
    return SimpleNamespace(
        key=WATERMARK_KEY, value=Watermark.encode([WatermarkEntry(*e) for e in entries]), offset=routed, headers=[]
    )


def _step(w, shard, recs) -> list:
    outs: list = []
    w.take(shard, recs, 0.0)
    w.release(shard, 0.0, outs)
    return outs


def test_a_record_read_before_the_marker_that_reports_it_is_not_late(tmp_path):
    """The router sends a marker after the records it covers, and the shard
    can read those records in one batch and the marker in the next. The
    oldest event must still be the engine's first, not a late one."""
    w, shard = _worker(tmp_path)
    sku_neg = {"event_id": "i1", "ts": T0, "sku": "S1", "available": -3}
    order = _order(T0 + 90_000)
    # Batch 1: the orders partition's marker (its records were routed and
    # reported), and inventory's first record, whose marker comes next.
    outs = _step(
        w,
        shard,
        [_record(ORD, 0, order), _marker(("orders", 0, 1, order["ts"], order["ts"], False)), _record(INV, 0, sku_neg)],
    )
    assert not shard.engine.started, "started before inventory reported where it begins"
    outs += _step(w, shard, [_marker(("inventory", 0, 1, T0, T0, False))])
    assert shard.engine.started
    fired = [v for kind, _k, v in outs if kind == "alerts"]
    assert [(a["rule_id"], a["group"], a["ts"]) for a in fired] == [
        ("negative-stock", {"sku": "S1"}, "2026-06-17T16:00:00.000Z")
    ]
    assert shard.engine.late == 0 and shard.engine.disorder == 0


def test_the_stream_starts_at_an_origin_whose_first_records_went_to_another_shard(tmp_path):
    """Inventory's first record (T0) went to another shard; this one gets a
    later one (T0 + 30 s) first. The engine waits for inventory's marker and
    starts at T0, as replay of the whole stream does."""
    w, shard = _worker(tmp_path)
    later = {"event_id": "i2", "ts": T0 + 30_000, "sku": "S1", "available": 5}
    order = _order(T0 + 60_000)
    _step(
        w,
        shard,
        [_record(INV, 1, later), _record(ORD, 0, order), _marker(("orders", 0, 1, order["ts"], order["ts"], False))],
    )
    assert not shard.engine.started
    _step(w, shard, [_marker(("inventory", 0, 2, later["ts"], T0, False))])
    assert shard.engine.started
    # surge rules judge from two windows after the stream's start (replay: T0)
    surge = shard.engine.runners["complaint-surge"]
    assert surge.judge_from == T0 + 2 * surge.window


def test_an_origin_that_is_caught_up_with_nothing_does_not_hold_the_start(tmp_path):
    w, shard = _worker(tmp_path, idle_s=0.0)
    shard.behind = False  # at the end of its partition of `routed`: markers' "caught up" counts
    sku_neg = {"event_id": "i1", "ts": T0, "sku": "S1", "available": -3}
    outs = _step(
        w,
        shard,
        [_record(INV, 0, sku_neg), _marker(("inventory", 0, 1, T0, T0, True), ("orders", 0, 0, None, None, True))],
    )
    assert shard.engine.started and shard.engine.clock.now == T0
    assert [v["group"] for kind, _k, v in outs if kind == "alerts"] == [{"sku": "S1"}]


class _Consumer:
    """What the rebalance listener and the main loop ask of aiokafka. The
    committed-offset lookup waits, as a real one does on the network."""

    def __init__(self):
        self.answer = asyncio.Event()
        self.seeks: list = []

    async def committed(self, tp):
        await self.answer.wait()
        return None

    def seek(self, tp, offset):
        self.seeks.append((tp.partition, offset))

    def highwater(self, tp):
        return None


def test_records_fetched_while_a_shard_is_being_assigned_are_not_taken_before_its_position(tmp_path):
    """The main loop goes on fetching while the listener awaits the committed
    offset. A batch from further on, handed to the shard then, must not make
    it drop the records before it as re-sends once it is moved to its start."""
    w, _ = _worker(tmp_path, idle_s=0.0)
    w.origins = [INV]
    w.stage.consumer = _Consumer()
    outs: list = []

    async def no_state(index):
        return None

    async def turn(batch):  # what the runtime's loop does with a batch
        got = await w.process(batch)
        if got is not None:
            outs.extend(got[0])

    w.checkpoints.read = no_state
    inv = [
        {"event_id": f"i{i}", "ts": T0 + i * 1000, "sku": f"S{i}", "available": -1 if i == 1 else 5} for i in range(6)
    ]
    recs = [_record(INV, i, inv[i], routed=i) for i in range(6)]
    tp = TopicPartition("routed", 0)

    async def scenario():
        listener = asyncio.ensure_future(_Listener(w.rt, w.stage).on_partitions_assigned({tp}))
        await asyncio.sleep(0.01)
        await turn({tp: recs[3:]})  # fetched meanwhile, from further on
        w.stage.consumer.answer.set()
        await listener
        await turn({tp: recs[3:]})  # fetched before the seek, handed over after it
        await turn({tp: recs + [_marker(("inventory", 0, 6, inv[5]["ts"], T0, True), routed=6)]})
        w.shards[0].behind = False
        await turn({})

    asyncio.run(scenario())
    shard = w.shards[0]
    assert w.stage.consumer.seeks[0] == (0, 0) and set(w.stage.consumer.seeks) == {(0, 0)}
    assert shard.dups == 0 and shard.engine.late == 0 and shard.engine.disorder == 0
    assert [(v["group"]["sku"], v["status"]) for kind, _k, v in outs if kind == "alerts"][:1] == [("S1", "firing")]
    assert shard.pos == 7


def test_a_gap_in_routed_is_read_again_once_then_accepted_as_gone(tmp_path):
    """Offsets missing from `routed` (retention deleted them) must not make
    the shard seek back for ever."""
    w, _ = _worker(tmp_path, idle_s=0.0)
    w.origins = [INV]
    w.stage.consumer = _Consumer()
    w.shards[0] = shard = Shard(0, w.make_engine(), 0.0, w.origins)
    shard.pos = 0
    late = _record(INV, 9, {"event_id": "i9", "ts": T0, "sku": "S9", "available": 1}, routed=9)

    tp = TopicPartition("routed", 0)
    asyncio.run(w.process({tp: [late]}))
    assert w.stage.consumer.seeks == [(0, 0)] and shard.pos == 0 and shard.next_origin_offset == {}
    asyncio.run(w.process({tp: [late]}))  # the same gap again: gone, go on
    assert w.stage.consumer.seeks == [(0, 0)] and shard.pos == 10 and shard.next_origin_offset == {INV: 10}


def test_a_record_routed_by_the_previous_release_is_taken(tmp_path):
    """Origin in the key and the original JSON, no headers: what a router of
    the previous release left on the repartition topic during an upgrade."""
    w, shard = _worker(tmp_path, idle_s=0.0)
    sku_neg = {"event_id": "i1", "ts": T0, "sku": "S1", "available": -3}
    old = SimpleNamespace(key=b"inventory:0:7", value=json.dumps(sku_neg).encode(), offset=0, headers=None)
    w.take(shard, [old], 0.0)
    assert shard.next_origin_offset == {INV: 8} and len(shard.buffer) == 1
    (rec,) = shard.buffer.items()
    assert rec.origin == Origin("inventory", 0, 7) and rec.event.sku == "S1"


def test_a_routed_event_of_the_previous_release_reads_as_this_ones():
    """The previous release routed (and checkpointed) an event as a marshal
    dict of its fields; a shard upgraded mid-stream reads both alike."""
    import marshal

    from anomalyd.io.records import decode_event

    ev = decode_value("orders", json.dumps({**_order(T0), "attrs": {"k": 1}}))
    fields = {f: getattr(ev, f) for f in ev.__struct_fields__}
    assert decode_event("orders", encode_event(ev)) == ev
    assert decode_event("orders", marshal.dumps(fields)) == ev
