"""`anomalyd run` forwards its alerts to a real Alertmanager (firing, then resolved)."""

import json
import time

import pytest

from anomalyd.kafkatools.admin import produce_jsonl
from tests.io.service import Service
from tests.io.test_alertmanager import alertmanager, am_alerts, needs_am  # noqa: F401  (fixture)

pytestmark = pytest.mark.kafka


@needs_am
def test_the_service_forwards_firing_and_resolved_alerts(broker, tmp_path, alertmanager):  # noqa: F811
    base, received = alertmanager
    svc = Service(broker.bootstrap, tmp_path, ANOMALYD_ALERTMANAGER_URL=base)
    now = int(time.time() * 1000)

    def inv(i, a, ts):
        return (
            svc.topics["inventory"],
            "SKU-AM",
            json.dumps({"event_id": f"am-{i}", "ts": ts, "sku": "SKU-AM", "available": a}).encode(),
        )

    svc.start()
    try:
        svc.wait_ready()
        produce_jsonl(broker.bootstrap, [inv(1, -7, now)])
        svc.wait(lambda: am_alerts(base, "negative-stock"), 30, "the alert in Alertmanager")
        [a] = am_alerts(base, "negative-stock")
        assert a["labels"]["sku"] == "SKU-AM" and a["labels"]["severity"] == "P1" and a["labels"]["team"] == "supply"
        assert "available stock is -7" in json.dumps(a["annotations"])
        produce_jsonl(broker.bootstrap, [inv(2, 50, now + 1000)])
        svc.wait(lambda: not am_alerts(base, "negative-stock"), 30, "the resolution in Alertmanager")
        svc.wait(lambda: any(m.get("status") == "resolved" for m in received), 30, "a resolved notification")
    finally:
        assert svc.stop() == 0
