"""Watching the embedded broker's load, so that a user whose live traffic
outgrows it is told so instead of seeing latency climb for no visible reason.

Tansu 0.6's memory storage keeps every record batch as one object and never
deletes one (no retention, and DeleteRecords panics), and a fetch lists every
object of the partition it reads: the more it holds, the more CPU each fetch
costs, until the broker uses a whole core and its answers come late
(bench/README.md, "Issue 15"). Its CPU share is the early sign, so that is
what is watched, with its resident memory.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Iterator, Optional

from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("anomalyd")

# Share of one core, averaged over WINDOW_S, from which the broker is said to
# be falling behind: past it, fetch answers were measured to come late.
SATURATED = 0.8
WINDOW_S = 60.0
REPEAT_S = 600.0  # a warning is repeated this often while it lasts

Usage = Callable[[], Optional[tuple[int, float]]]  # (RSS bytes, CPU seconds so far)


class BrokerLoad:
    """Samples a broker's usage; warns in the log and exposes /metrics gauges.

    ``usage`` is :meth:`EmbeddedBroker.usage`. Call :meth:`sample` every few
    seconds; ``clock`` is for tests that replay samples at given times.
    """

    def __init__(self, usage: Usage, clock: Callable[[], float] = time.monotonic) -> None:
        self.usage = usage
        self.clock = clock
        self.samples: deque[tuple[float, float]] = deque()  # (time, CPU seconds)
        self.rss_bytes = 0
        self.cpu_ratio = 0.0
        self.saturated = False
        self.warned_at: Optional[float] = None

    def sample(self) -> None:
        got = self.usage()
        if got is None:
            return
        now = self.clock()
        self.rss_bytes, cpu = got
        self.samples.append((now, cpu))
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW_S:
            self.samples.popleft()
        t0, c0 = self.samples[0]
        if now - t0 < WINDOW_S:  # not a full window yet: no verdict
            return
        self.cpu_ratio = (cpu - c0) / (now - t0)
        was, self.saturated = self.saturated, self.cpu_ratio >= SATURATED
        if self.saturated and (not was or self.warned_at is None or now - self.warned_at >= REPEAT_S):
            self.warned_at = now
            log.warning(
                "the embedded broker is falling behind: it used %.0f%% of a core over the last %.0f s and holds "
                "%.0f MB. Its memory storage keeps every record and slows as it fills, so latency will keep "
                "growing; for sustained live traffic point ANOMALYD_BOOTSTRAP_SERVERS at a Kafka cluster "
                "(README, 'The embedded broker')",
                100 * self.cpu_ratio,
                now - t0,
                self.rss_bytes / 1e6,
            )
        elif was and not self.saturated:
            self.warned_at = None
            log.info("the embedded broker keeps up again (%.0f%% of a core)", 100 * self.cpu_ratio)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "anomalyd_embedded_broker_rss_bytes", "Resident memory of the embedded broker", value=self.rss_bytes
        )
        yield GaugeMetricFamily(
            "anomalyd_embedded_broker_cpu_ratio",
            f"Share of one core the embedded broker used over the last {WINDOW_S:.0f} s",
            value=self.cpu_ratio,
        )
        yield GaugeMetricFamily(
            "anomalyd_embedded_broker_behind",
            f"1 while the embedded broker uses {SATURATED:.0%} of a core or more (it is falling behind)",
            value=1 if self.saturated else 0,
        )
