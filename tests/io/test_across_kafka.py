"""Rules across sources (sequence) and over rules (correlate) through the
real broker: the service, direct and in scale-out mode with two workers,
says what replay says, though an order's key and its SKU, or a correlate
rule's inputs, hash to different shards."""

from __future__ import annotations

import json

import pytest

from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from anomalyd.simulate import generate
from tests.io.service import Service
from tests.io.test_scaleout import ids, one_worker, sharded, two_workers, wait_outputs
from tests.io.test_worker import replay

pytestmark = pytest.mark.kafka

NEW = {"unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident"}


def double_trouble(t0: int) -> list[tuple[int, str, dict]]:
    """Complaints surging and stock negative on one SKU (count: rules)."""
    evs = [
        (t0 + i * 30_000, "complaints", {"ticket_id": f"DT-{i}", "category": "quality", "sku": "SKU-DT"})
        for i in range(20)
    ]
    evs += [
        (t0 + 600_000 + i * 10_000, "complaints", {"ticket_id": f"DU-{i}", "category": "quality", "sku": "SKU-DT"})
        for i in range(30)
    ]
    evs += [
        (t0 + 720_000, "inventory", {"sku": "SKU-DT", "available": -3, "warehouse": "WH-EAST"}),
        (t0 + 840_000, "inventory", {"sku": "SKU-DT", "available": 40, "warehouse": "WH-EAST"}),
    ]
    return evs


@pytest.fixture(scope="module")
def stream():
    envs = [
        (e["value"]["ts"], e["topic"], e["value"])
        for e in generate(
            seed=5, minutes=75, rate=2, anomalies=["unpaid-orders", "amount-mismatch", "channel-incident"]
        )
    ]
    t0 = envs[0][0] + 40 * 60_000
    envs += [(ts, topic, {"event_id": f"dt-{i}", "ts": ts, **v}) for i, (ts, topic, v) in enumerate(double_trouble(t0))]
    envs.sort(key=lambda e: e[0])  # stable: the simulator's order kept at equal times
    lines = [json.dumps({"topic": topic, "value": v}) for _, topic, v in envs]
    ref = replay(lines)
    assert NEW | {"sku-double-trouble"} <= {a["rule_id"] for a in ref["alerts"]}
    assert any(c["rule_id"] == "payment-channel-incident" for c in ref["breaker-commands"])
    return lines, ref


def test_sequence_and_correlate_through_kafka_equal_replay(broker, tmp_path, stream):
    lines, ref = stream
    with one_worker(Service(broker.bootstrap, tmp_path), lines) as svc:
        out = wait_outputs(svc, ids(ref), [svc], timeout=30, ref=ref)
        metrics = svc.get("/metrics")[1]
    assert ids(out) == ids(ref)
    eng = Engine(load_rules("rules"))
    for ln in lines:
        eng.process_line(ln)
    for rid in ("unpaid-orders-holding-stock", "payment-order-mismatch"):
        for kind, n in zip(("matched", "mismatched", "missed"), eng.runners[rid].outcomes, strict=True):
            assert f'anomalyd_sequence_outcomes_total{{outcome="{kind}",rule_id="{rid}"}} {float(n)}' in metrics


def test_sequence_and_correlate_in_scale_out_mode_equal_replay(broker, tmp_path, stream):
    lines, ref = stream
    a = sharded(broker, tmp_path)
    with two_workers(a, lines) as (a, b):
        out = wait_outputs(a, ids(ref), [a, b], timeout=60, ref=ref)
    assert set(ids(out)[0]) == set(ids(ref)[0]) and set(ids(out)[1]) == set(ids(ref)[1])
