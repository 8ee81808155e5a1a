"""What the service log says about dead letters and held events (no broker)."""

from __future__ import annotations

import asyncio
import logging
import time

from anomalyd.engine.engine import Engine
from anomalyd.io.direct import Direct, direct_worker
from anomalyd.io.runtime import Runtime


class _Producer:
    async def send(self, topic, key=None, value=None):
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class _Consumer:
    def paused(self):
        return set()


def _runtime() -> Runtime:
    rt = direct_worker(
        bootstrap="127.0.0.1:1",
        engine=Engine([]),
        input_topics={"orders": "orders"},
        output_topics={"dead-letter": "dead-letter", "alerts": "alerts"},
        group_id="g",
        snapshots=None,
    )
    rt.producer, rt.stage("direct").consumer = _Producer(), _Consumer()
    return rt


def _direct() -> Direct:
    strategy = _runtime().stage("direct").strategy
    assert isinstance(strategy, Direct)
    return strategy


def _dead(code: str) -> tuple:
    return ("dead-letter", "orders", {"reason_code": code, "reason": "x", "original": "x", "source_topic": "orders"})


def test_dead_letters_are_logged_counted_by_reason_at_most_every_10s(caplog):
    w = _runtime()
    caplog.set_level(logging.WARNING, "anomalyd.worker")
    asyncio.run(w.emit([_dead("invalid_json"), _dead("invalid_field"), _dead("invalid_field")]))
    lines = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert lines == [
        "dead-lettered 3 records in the last 1s (invalid_field 2, invalid_json 1); see the dead-letter topic"
    ]
    asyncio.run(w.emit([_dead("not_object")] * 500))  # a flood within 10 s: no line per record
    assert sum("dead-lettered" in r.getMessage() for r in caplog.records) == 1
    w.dead_letters.clock = lambda: time.monotonic() + 11
    w.dead_letters.report()  # the loop's next turn after 10 s
    lines = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert (
        len(lines) == 2
        and lines[1].startswith("dead-lettered 500 records in the last ")
        and "(not_object 500)" in lines[1]
    )


def test_an_idle_service_does_not_report_new_events_as_held_since_long_ago(caplog):
    w = _direct()
    caplog.set_level(logging.WARNING, "anomalyd.worker")
    w.held_since = w.stall_logged = time.monotonic() - 67  # sat idle for a while
    assert asyncio.run(w.process({})) is None  # what the loop does on each empty turn
    w.buffer.assign([("orders", 0), ("orders", 1)])
    w.buffer.push(("orders", 0), 1_781_716_788_161, "e")  # two new events wait for the other partition
    w.buffer.push(("orders", 0), 1_781_716_788_162, "e")
    w.buffer.advance(("orders", 1), 1_781_716_787_000)  # the partition that holds them back
    w._stall_check(moved=False)
    assert not [r for r in caplog.records if "held" in r.getMessage()]
    w.held_since -= 12  # now they have been held for 12 s
    w._stall_check(moved=False)
    msg = [r.getMessage() for r in caplog.records if "held" in r.getMessage()][0]
    assert msg.startswith("events held for 12s: 2 buffered, event time ")
    assert "event time 2026-06-17T17:19:47.000Z held by [('orders', 1)]" in msg, msg  # not raw epoch numbers
