"""Direct mode's snapshot through the real broker: it records the offsets of
the records still in the reorder buffer, not their bytes, and a restore
reads them again from Kafka, skipping the records the engine has seen and
the dead-lettered ones; a snapshot of the previous form (raw records) still
loads."""

from __future__ import annotations

import asyncio
import json
import marshal
import tempfile
import uuid
import zlib
from pathlib import Path

import pytest

from anomalyd.engine import snapshot
from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from anomalyd.io.direct import direct_worker
from anomalyd.io.records import BufferedRecord, Origin
from anomalyd.io.snapshots import SnapshotFile
from anomalyd.kafkatools.admin import consume_all, ensure_topics, produce_jsonl

pytestmark = pytest.mark.kafka

T0 = 1781712000000


def topics(bootstrap: str) -> tuple[dict[str, str], dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    ins = {f"{s}-{tag}": s for s in ("orders", "inventory", "payments", "complaints")}
    outs = {k: f"{k}-{tag}" for k in ("alerts", "alerts-shadow", "breaker-commands", "dead-letter")}
    ensure_topics(bootstrap, {t: 1 for t in [*ins, *outs.values()]})
    return ins, outs


def value(source: str, i: int, s: int, **kw) -> bytes:
    """Event `i` of `source` at T0 + s seconds."""
    return json.dumps({"event_id": f"{source}{i}", "ts": T0 + s * 1000, **kw}).encode()


def stock(i: int, s: int, available: int) -> bytes:
    return value("inventory", i, s, sku=f"S{i}", available=available, warehouse="WH-EAST")


async def run_until(bootstrap, ins, outs, state: Path, group: str, idle_s: float, done) -> Engine:
    engine = Engine(load_rules("rules"))
    rt = direct_worker(
        bootstrap=bootstrap,
        engine=engine,
        input_topics=ins,
        output_topics=outs,
        group_id=group,
        snapshots=SnapshotFile(state, "s"),
        log_alerts=False,
        partition_idle_s=idle_s,
    )
    task = asyncio.create_task(rt.run())
    for _ in range(600):
        if done(engine) or task.done():
            break
        await asyncio.sleep(0.05)
    rt.stopping.set()
    await task
    return engine


def test_a_restore_reads_the_buffered_records_again_and_only_those(broker):
    ins, outs = topics(broker.bootstrap)
    t = {s: topic for topic, s in ins.items()}
    # inventory runs ahead and out of ts order; payments and complaints are
    # at 3 s and orders at 2 s, so while they are quiet (idle timeout 60 s)
    # the watermark stays at 2 s: the order and inventory's offsets 0 and 2
    # are released, 3 is dead-lettered, 1, 4, 5 and 6 stay buffered.
    produce_jsonl(
        broker.bootstrap,
        [
            (t["inventory"], None, stock(0, 1, 5)),
            (t["inventory"], None, stock(1, 4, -1)),
            (t["inventory"], None, stock(2, 2, -2)),
            (t["inventory"], None, b"{not json"),
            (t["inventory"], None, stock(4, 5, 7)),
            (t["inventory"], None, stock(5, 3, -3)),
            (t["inventory"], None, stock(6, 6, 9)),
            (
                t["orders"],
                None,
                value("orders", 0, 2, order_id="o", sku="S", quantity=1, unit_price=1.0, status="paid"),
            ),
            (
                t["payments"],
                None,
                value("payments", 0, 3, payment_id="p", order_id="o", amount=1.0, status="succeeded"),
            ),
            (t["complaints"], None, value("complaints", 0, 3, ticket_id="c", category="late")),
        ],
    )
    group = f"g-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as d:
        state = Path(d)
        first = asyncio.run(
            run_until(
                broker.bootstrap,
                ins,
                outs,
                state,
                group,
                60,
                lambda e: sum(e.consumed.values()) == 3 and e.invalid,
            )
        )
        assert first.consumed == {"inventory": 2, "orders": 1}
        data = (state / "s.snapshot").read_bytes()
        extra = marshal.loads(zlib.decompress(data))["extra"]
        assert "buffer" not in extra  # no record bytes in the snapshot
        held = {(tp, p): ranges for tp, p, ranges in extra["held"]}
        assert held[(t["inventory"], 0)] == [(1, 2), (4, 7)]
        assert dict(((tp, p), o) for tp, p, o in extra["positions"])[(t["inventory"], 0)] == 7

        second = asyncio.run(
            run_until(broker.bootstrap, ins, outs, state, group, 0.3, lambda e: sum(e.consumed.values()) >= 10)
        )
    # every valid record reached the engine once, in ts order; the bad one was dead-lettered once
    assert second.consumed == {"inventory": 6, "orders": 1, "payments": 1, "complaints": 1}
    assert second.invalid == {"invalid_json": 1} and second.disorder == 0 and second.late == 0
    dead = consume_all(broker.bootstrap, [outs["dead-letter"]], timeout_s=10, idle_s=0.5)
    assert len(dead) == 1
    fired = [
        json.loads(r[4])["group"]["sku"]
        for r in consume_all(broker.bootstrap, [outs["alerts"]], timeout_s=10, idle_s=0.5)
        if json.loads(r[4])["rule_id"] == "negative-stock" and json.loads(r[4])["status"] == "firing"
    ]
    assert sorted(fired) == ["S1", "S2", "S5"]


def test_a_snapshot_holding_raw_buffered_records_still_loads(broker):
    """The form written before issue 15: the buffered records' bytes."""
    ins, outs = topics(broker.bootstrap)
    t = {s: topic for topic, s in ins.items()}
    recs = [(t["inventory"], None, stock(i, i, -1 if i == 1 else 5)) for i in range(4)]
    produce_jsonl(broker.bootstrap, recs)
    inv = t["inventory"]
    old = snapshot.dump(
        Engine(load_rules("rules")),
        {
            "positions": [(inv, 0, 2)],  # offsets 0 and 1 were read, and are still buffered
            "buffer": [BufferedRecord("inventory", None, Origin(inv, 0, o), None, recs[o][2]).encode() for o in (0, 1)],
        },
    )
    with tempfile.TemporaryDirectory() as d:
        SnapshotFile(Path(d), "s").write(old)
        eng = asyncio.run(
            run_until(
                broker.bootstrap,
                ins,
                outs,
                Path(d),
                f"g-{uuid.uuid4().hex[:6]}",
                0.3,
                lambda e: e.consumed["inventory"] >= 4,
            )
        )
    assert eng.consumed == {"inventory": 4}  # two from the snapshot, two read from offset 2
    fired = [json.loads(r[4]) for r in consume_all(broker.bootstrap, [outs["alerts"]], timeout_s=10, idle_s=0.5)]
    assert [(a["rule_id"], a["group"]["sku"]) for a in fired if a["status"] == "firing"] == [("negative-stock", "S1")]
