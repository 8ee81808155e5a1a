"""The embedded broker's load watch: a real broker's usage read from /proc,
and the warning and gauges of BrokerLoad over a replayed series of samples."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from anomalyd.broker.embedded import EmbeddedBroker
from anomalyd.broker.watch import BrokerLoad


@pytest.mark.kafka
def test_usage_of_a_running_broker_then_none_once_stopped(broker):
    rss, cpu = broker.usage()
    assert rss > 1_000_000 and cpu >= 0
    other = EmbeddedBroker(port=0)
    assert other.usage() is None  # never started
    other.start()
    assert other.usage() is not None
    other.stop()
    assert other.usage() is None


class Replay:
    """Samples at given times: (seconds, RSS bytes, CPU seconds)."""

    def __init__(self, samples):
        self.samples = list(samples)
        self.now = 0.0

    def usage(self):
        self.now, rss, cpu = self.samples.pop(0)
        return rss, cpu


def _gauges(load: BrokerLoad) -> dict[str, float]:
    reg = CollectorRegistry()
    reg.register(load)
    return {
        ln.split()[0]: float(ln.split()[1])
        for ln in generate_latest(reg).decode().splitlines()
        if ln.startswith("anomalyd_embedded_broker")
    }


def test_a_broker_using_most_of_a_core_is_reported_behind_once_then_caught_up(caplog):
    # 0.95 CPU s a second for 3 minutes, then idle for 2
    busy = [(t, 300_000_000 + t * 1_000_000, 0.95 * t) for t in range(0, 181, 5)]
    idle = [(t, 480_000_000, 0.95 * 180 + 0.05 * (t - 180)) for t in range(185, 301, 5)]
    r = Replay(busy + idle)
    load = BrokerLoad(r.usage, clock=lambda: r.now)
    caplog.set_level(logging.INFO, logger="anomalyd")
    seen = []
    for _ in range(len(busy)):
        load.sample()
        seen.append(load.saturated)
    assert seen.index(True) == 12  # the first full 60 s window
    g = _gauges(load)
    assert g["anomalyd_embedded_broker_behind"] == 1
    assert g["anomalyd_embedded_broker_cpu_ratio"] == pytest.approx(0.95)
    assert g["anomalyd_embedded_broker_rss_bytes"] == 480_000_000
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "falling behind: it used 95% of a core" in warnings[0]
    for _ in range(len(idle)):
        load.sample()
    assert not load.saturated and _gauges(load)["anomalyd_embedded_broker_behind"] == 0
    assert any("keeps up again" in r.getMessage() for r in caplog.records)


def test_a_broker_at_half_a_core_is_not_behind(caplog):
    r = Replay((t, 50_000_000, 0.5 * t) for t in range(0, 301, 5))
    load = BrokerLoad(r.usage, clock=lambda: r.now)
    for _ in range(61):
        load.sample()
    assert not load.saturated and load.cpu_ratio == pytest.approx(0.5)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
