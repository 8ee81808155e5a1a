"""The peer: bench/peer_rules/peer.yaml's three rules written for Quix Streams,
and a bare confluent-kafka consumer. Run by bench/bench_peer.py with the
interpreter of a separate virtualenv (bench/requirements-peer.txt: Quix pins
pydantic below anomalyd's pin, so the two cannot share one).

    python bench/peer_quix.py quix BOOTSTRAP PREFIX N STATE_DIR {rocksdb,memory}
    python bench/peer_quix.py confluent BOOTSTRAP PREFIX N

Prints one JSON line: records handled, seconds from the first record to the
last, the process's CPU seconds, alerts produced.

The rules as a Quix user would write them: negative stock and the price swing
keep one value per SKU (the topics are keyed by SKU); the failure ratio
re-keys payments by merchant (group_by, which produces them to a repartition
topic and reads them back) and counts failed and all payments in 10-minute
windows hopping by one minute, as anomalyd's ratio windows move by buckets.
"""

from __future__ import annotations

import json
import resource
import sys
import time

PARTITIONS = 4
SOURCES = ("orders", "inventory", "payments")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_quix(bootstrap: str, prefix: str, n: int, state_dir: str, store: str) -> dict:
    from quixstreams import Application
    from quixstreams.state.memory import MemoryStore

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{prefix}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        use_changelog_topics=False,  # state stays local, as anomalyd's snapshots do
        loglevel="WARNING",
    )
    if store == "memory":
        # Quix's Application has no argument for it; every store it registers uses this default.
        app._state_manager._default_store_type = MemoryStore

    def ts(value, headers, timestamp, timestamp_type) -> int:
        return value["ts"]

    topic = {
        s: app.topic(f"{prefix}-{s}", value_deserializer="json", key_deserializer="str", timestamp_extractor=ts)
        for s in SOURCES
    }
    alerts = app.topic(f"{prefix}-alerts", value_serializer="json")
    seen = {"n": 0, "first": None, "last": None, "alerts": 0}

    def count(_value) -> None:
        if seen["first"] is None:
            seen["first"] = time.perf_counter()
        seen["n"] += 1
        if seen["n"] >= n:
            seen["last"] = time.perf_counter()
            app.stop()

    def alert(value) -> None:
        seen["alerts"] += 1

    def negative_stock(v: dict, state) -> dict | None:
        if v.get("warehouse") == "WH-TEST":
            return None
        firing, now = state.get("firing", False), v["available"] < 0
        if now == firing:
            return None
        state.set("firing", now)
        return {"rule_id": "negative-stock", "state": "firing" if now else "resolved", "sku": v["sku"], "ts": v["ts"]}

    inv = app.dataframe(topic["inventory"])
    inv = inv.update(count).apply(negative_stock, stateful=True).filter(lambda a: a is not None)
    inv.update(alert).to_topic(alerts)

    def price_swing(v: dict, state) -> dict | None:
        if v.get("status") not in ("created", "paid"):
            return None
        prev, price = state.get("price"), v["unit_price"]
        state.set("price", price)
        if prev and abs(price - prev) / prev * 100 > 30:
            return {"rule_id": "order-price-swing", "sku": v["sku"], "value": price, "baseline": prev, "ts": v["ts"]}
        return None

    orders = app.dataframe(topic["orders"])
    orders = orders.update(count).apply(price_swing, stateful=True).filter(lambda a: a is not None)
    orders.update(alert).to_topic(alerts)

    pay = app.dataframe(topic["payments"]).group_by("merchant_id")
    pay = pay.update(count).filter(lambda v: v.get("status") in ("succeeded", "failed"))
    ratio = (
        pay.hopping_window(duration_ms=600_000, step_ms=60_000)
        .reduce(
            lambda agg, v: [agg[0] + (v["status"] == "failed"), agg[1] + 1],
            lambda v: [int(v["status"] == "failed"), 1],
        )
        .current()
    )
    ratio = ratio.filter(lambda w: w["value"][1] >= 20 and w["value"][0] / w["value"][1] > 0.2)
    ratio.update(alert).to_topic(alerts)

    app.run()
    return {"n": seen["n"], "seconds": (seen["last"] or time.perf_counter()) - seen["first"], "alerts": seen["alerts"]}


def run_confluent(bootstrap: str, prefix: str, n: int) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bare-{prefix}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(f"{prefix}-{s}", p, 0) for s in SOURCES for p in range(PARTITIONS)])
    got, first, sink = 0, None, 0
    while got < n:
        for m in c.consume(num_messages=5000, timeout=0.2):
            if m.error():
                continue
            if first is None:
                first = time.perf_counter()
            sink += len(json.loads(m.value()))
            got += 1
    last = time.perf_counter()
    c.close()
    return {"n": got, "seconds": last - first, "alerts": 0}


def main() -> None:
    kind, bootstrap, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kind == "quix":
        res = run_quix(bootstrap, prefix, n, sys.argv[5], sys.argv[6])
    else:
        res = run_confluent(bootstrap, prefix, n)
    res["cpu_s"] = cpu_s()
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
