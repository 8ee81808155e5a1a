"""RepeatFilter: a broker outage must not flood the log."""

from __future__ import annotations

import logging

from anomalyd.io.kafkalog import RepeatFilter, quiet_aiokafka


def _rec(msg: str, *args, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_each_template_passes_once_per_window_and_says_how_many_it_held_back():
    now = [0.0]
    f = RepeatFilter(every=30, clock=lambda: now[0])
    assert f.filter(_rec("Unable connect to node with id %s: %s", 1, "refused"))
    assert f.filter(_rec("Unable to update metadata from %s", [1]))  # another template passes
    assert f.filter(_rec("Unable connect to node with id %s", 1, name="aiokafka.conn"))  # another logger too
    for t in range(1, 300):
        now[0] = t / 10
        assert not f.filter(_rec("Unable connect to node with id %s: %s", 1, "refused"))
    now[0] = 30.5
    r = _rec("Unable connect to node with id %s: %s", 1, "refused")
    assert f.filter(r)
    assert r.getMessage() == "Unable connect to node with id 1: refused [299 more like this in the last 30s]"
    now[0] = 31
    assert not f.filter(_rec("Unable connect to node with id %s: %s", 1, "refused"))


def test_installed_on_every_aiokafka_logger_once():
    f = quiet_aiokafka()
    quiet_aiokafka()
    for name in ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator", "aiokafka.conn"):
        assert logging.getLogger(name).filters.count(f) == 1, name
