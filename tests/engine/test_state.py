"""Bounded state: idle eviction, a per-rule cap, counted; real groups still alert."""

from anomalyd.engine.engine import Engine
from anomalyd.engine.types import EngineConfig
from tests.helpers import MIN, T0, alerts, order, rule

SWING = dict(type="change", source="orders", field="unit_price", pct=30, group_by=["sku"])


def test_cap_bounds_groups_under_a_flood_of_unique_keys_and_counts_evictions():
    eng = Engine([rule(**SWING)], EngineConfig(max_groups_per_rule=1000))
    out = []
    for i in range(20_000):
        out += eng.process_line(order(T0 + i, f"FLOOD-{i}", unit_price=10))
        if i % 100 == 0:  # a real SKU keeps trading through the flood
            out += eng.process_line(order(T0 + i, "REAL", unit_price=10))
    out += eng.process_line(order(T0 + 20_001, "REAL", unit_price=3))
    assert eng.groups()["r"] <= 1000
    assert eng.evictions()["r"] >= 19_000
    assert alerts(out) == [("r", "firing", "REAL", 20)]


def test_idle_groups_are_evicted_after_the_idle_timeout():
    eng = Engine([rule(**SWING)], EngineConfig(idle_timeout_ms=10 * MIN))
    for i in range(100):
        eng.process_line(order(T0, f"S{i}"))
    for m in range(1, 31):
        eng.process_line(order(T0 + m * MIN, "BUSY"))
    assert eng.groups()["r"] == 1 and eng.evictions()["r"] == 100


def test_idle_timeout_never_cuts_a_window_short():
    r = rule(type="count", source="orders", window="2h", op=">=", value=2, group_by=["sku"])
    eng = Engine([r], EngineConfig(idle_timeout_ms=MIN))
    out = eng.process_line(order(T0, "S"))
    for m in range(1, 90):
        out += eng.process_line(order(T0 + m * MIN, "OTHER-%d" % (m % 3)))
    out += eng.process_line(order(T0 + 90 * MIN, "S"))
    assert ("r", "firing", "S", 5400) in alerts(out)
