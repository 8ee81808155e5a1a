"""A scale-out shard starts its engine where replay starts: at the smallest
ts of every input partition. Without Kafka: routed records and markers are
fed to the shard in the order the broker can deliver them."""

from __future__ import annotations

import json
from types import SimpleNamespace

from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from anomalyd.io.sharded import MARKER_KEY, Shard, ShardedWorker
from anomalyd.io.snapshots import SnapshotFile
from anomalyd.io.statestore import StateStore

T0 = 1781712000000
INV, ORD = ("inventory", 0), ("orders", 0)


def _worker(tmp_path, idle_s: float = 0.5) -> tuple[ShardedWorker, object]:
    rules = load_rules("rules")
    w = ShardedWorker(make_engine=lambda: Engine(rules), routed_topic="routed", shard_count=1,
                      state=StateStore("127.0.0.1:1", "state"), bootstrap="127.0.0.1:1",
                      input_topics={"inventory": "inventory", "orders": "orders"}, output_topics={},
                      group_id="g", snapshots=SnapshotFile(tmp_path, "g"), log_alerts=False)
    w.origins = [INV, ORD]
    eng = w.make_engine()
    eng.set_shard(0, 1)
    return w, Shard(0, eng, idle_s, w.origins)


def _record(origin, offset: int, value: dict):
    return SimpleNamespace(key=f"{origin[0]}:{origin[1]}:{offset}".encode(), value=json.dumps(value).encode(), offset=0)


def _marker(*entries):
    # [topic, partition, next offset, max ts, min ts since the last marker, caught up]
    return SimpleNamespace(key=MARKER_KEY, value=json.dumps([list(e) for e in entries]).encode(), offset=0)


def _step(w, shard, recs) -> list:
    outs: list = []
    w._take(shard, recs, 0.0)
    w._release(shard, 0.0, outs)
    return outs


def test_a_record_read_before_the_marker_that_reports_it_is_not_late(tmp_path):
    """The router sends a marker after the records it covers, and the shard
    can read those records in one batch and the marker in the next. The
    oldest event must still be the engine's first, not a late one."""
    w, shard = _worker(tmp_path)
    sku_neg = {"event_id": "i1", "ts": T0, "sku": "S1", "available": -3}
    order = {"event_id": "o1", "ts": T0 + 90_000, "order_id": "O1", "sku": "S2", "qty": 1, "unit_price": 10.0,
             "channel": "app", "user_id": "u"}
    # Batch 1: the orders partition's marker (its records were routed and
    # reported), and inventory's first record, whose marker comes next.
    outs = _step(w, shard, [_record(ORD, 0, order), _marker(("orders", 0, 1, order["ts"], order["ts"], False)),
                            _record(INV, 0, sku_neg)])
    assert not shard.engine.started, "started before inventory reported where it begins"
    outs += _step(w, shard, [_marker(("inventory", 0, 1, T0, T0, False))])
    assert shard.engine.started
    fired = [v for kind, _k, v in outs if kind == "alerts"]
    assert [(a["rule_id"], a["group"], a["ts"]) for a in fired] == [("negative-stock", {"sku": "S1"}, "2026-06-17T16:00:00.000Z")]
    assert shard.engine.late == 0 and shard.engine.disorder == 0


def test_the_stream_starts_at_an_origin_whose_first_records_went_to_another_shard(tmp_path):
    """Inventory's first record (T0) went to another shard; this one gets a
    later one (T0 + 30 s) first. The engine waits for inventory's marker and
    starts at T0, as replay of the whole stream does."""
    w, shard = _worker(tmp_path)
    later = {"event_id": "i2", "ts": T0 + 30_000, "sku": "S1", "available": 5}
    order = {"event_id": "o1", "ts": T0 + 60_000, "order_id": "O1", "sku": "S2", "qty": 1, "unit_price": 10.0,
             "channel": "app", "user_id": "u"}
    _step(w, shard, [_record(INV, 1, later), _record(ORD, 0, order),
                     _marker(("orders", 0, 1, order["ts"], order["ts"], False))])
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
    outs = _step(w, shard, [_record(INV, 0, sku_neg), _marker(("inventory", 0, 1, T0, T0, True),
                                                               ("orders", 0, 0, None, None, True))])
    assert shard.engine.started and shard.engine.clock.now == T0
    assert [v["group"] for kind, _k, v in outs if kind == "alerts"] == [{"sku": "S1"}]
