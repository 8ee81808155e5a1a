"""A flood of distinct keys through every rule type: state stays under the
cap, evictions are counted, and the real groups still alert. (CI size; the
full-size run is a bench for issue 5.)"""

import json
import tracemalloc

from anomalyd.engine.engine import Engine
from anomalyd.engine.types import EngineConfig
from tests.helpers import T0, alerts, rule

CAP = 2_000
FLOOD = 60_000
RULES = [
    rule(id="t", type="threshold", source="inventory", field="available", op="<", value=0, group_by=["sku"]),
    rule(id="c", type="change", source="inventory", field="available", pct=50, group_by=["sku"]),
    rule(id="s", type="surge", source="inventory", window="1m", pct=50, min_count=3, group_by=["sku"]),
    rule(
        id="r",
        type="ratio",
        source="inventory",
        window="1m",
        op=">",
        value=0.5,
        min_count=3,
        group_by=["sku"],
        numerator=[{"field": "available", "op": "<", "value": 0}],
    ),
    rule(id="n", type="count", source="inventory", window="1m", op=">=", value=3, group_by=["sku"]),
    rule(id="a", type="absence", source="inventory", window="1m", group_by=["sku"]),
]


def inv(i: int, ts: int, sku: str, available: int) -> str:
    return json.dumps(
        {"topic": "inventory", "value": {"event_id": f"e{i}", "ts": ts, "sku": sku, "available": available}}
    )


def test_flood_of_unique_skus_stays_bounded_and_real_groups_still_alert():
    eng = Engine(RULES, EngineConfig(max_groups_per_rule=CAP))
    out = []
    tracemalloc.start()
    for i in range(FLOOD):
        ts = T0 + i  # 1 ms apart: the whole flood is inside one window
        out += eng.process_line(inv(i, ts, f"FLOOD-{i}", 10))
        if i % 1000 == 0:
            out += eng.process_line(inv(i, ts, "REAL", -5 if i % 2000 else -50))  # a real SKU keeps going wrong
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    groups, evicted = eng.groups(), eng.evictions()
    for rid in ("c", "s", "r", "n", "a"):
        assert groups[rid] <= CAP, (rid, groups[rid])
        assert evicted[rid] >= FLOOD - CAP, (rid, evicted[rid])
    fired = {a[0] for a in alerts(out) if a[2] == "REAL" and a[1] == "firing"}
    assert fired >= {"t", "c", "r", "n"}, fired  # surge needs history; absence needs silence
    assert peak < 200 * 1024 * 1024, peak  # far below: the cap holds state down


def test_a_flood_of_keys_that_all_fire_keeps_firing_alerts_under_the_cap():
    # An absence rule on SKUs each seen once: every one of them fires a minute
    # later. Firing alerts are state too and must stay under the cap, counted.
    keys = 20_000
    eng = Engine(
        [rule(id="a", type="absence", source="inventory", window="1m", group_by=["sku"])],
        EngineConfig(max_groups_per_rule=CAP),
    )
    fired = 0
    for i in range(keys):
        ts = T0 + i * 50  # 20 new keys a second (the cap holds a key past its 1m deadline)
        fired += sum(1 for t, _, v in eng.process_line(inv(i, ts, f"FLOOD-{i}", 1)) if t == "alerts")
    life = eng.runners["a"].life
    assert fired > 2 * CAP  # the flood did fire far past the cap
    assert len(life.active) <= CAP
    assert life.evicted == fired - len(life.active)
    assert eng.summary()["alerts_evicted"] == life.evicted
