"""Alert lifecycle and breaker commands: one record per state change, stable ids."""

from anomalyd.engine.engine import Engine
from anomalyd.engine.records import Alert, BreakerCommand
from anomalyd.engine.types import EngineConfig
from tests.helpers import MIN, T0, alerts, commands, inv, rule, run

NEG = dict(type="threshold", source="inventory", field="available", op="<", value=0, group_by=["sku"])
BRK = {"action": "pause_sales", "scope": ["sku"], "ttl": "30m"}


def test_one_record_per_state_change_not_per_event():
    lines = [inv(T0 + i * MIN, "S", -i - 1) for i in range(5)] + [inv(T0 + 5 * MIN, "S", 3)]
    assert alerts(run([rule(**NEG)], lines)) == [("r", "firing", "S", 0), ("r", "resolved", "S", 300)]


def test_same_input_same_ids_and_records_match_the_published_models():
    lines = [inv(T0, "S", -1), inv(T0 + MIN, "S", 5)]
    r = rule(**NEG, breaker=BRK)
    a, b = run([r], lines), run([r], lines)
    assert a == b
    ids = [v["alert_id"] for t, _, v in a if t == "alerts"]
    assert len(set(ids)) == 2
    for t, key, v in a:
        if t == "alerts":
            Alert.model_validate(v)
            assert key == v["fingerprint"]
        else:
            BreakerCommand.model_validate(v)
            assert key == "sku=S"


def test_cooldown_keeps_one_episode_through_flapping():
    r = rule(**NEG, cooldown="10m")
    lines = [
        inv(T0, "S", -1),
        inv(T0 + MIN, "S", 5),
        inv(T0 + 2 * MIN, "S", -2),
        inv(T0 + 3 * MIN, "S", 5),
        inv(T0 + 20 * MIN, "X", 1),
    ]
    # false from 3m; resolves 10m after the condition last held (2m)
    assert alerts(run([r], lines)) == [("r", "firing", "S", 0), ("r", "resolved", "S", 720)]


def test_breaker_opens_once_per_scope_and_closes_on_resolve():
    r = rule(**NEG, breaker=BRK)
    lines = [inv(T0, "S", -1), inv(T0 + MIN, "S", -2), inv(T0 + 2 * MIN, "S", 4)]
    out = run([r], lines)
    assert commands(out) == [("open", "S"), ("close", "S")]
    opened = [v for t, _, v in out if t == "breaker-commands"][0]
    assert opened["expires_at"] == "2026-06-17T16:30:00.000Z"


def test_breaker_lapses_by_ttl_reopens_if_still_firing_and_needs_no_close():
    r = rule(**NEG, breaker={**BRK, "ttl": "5m"})
    lines = [inv(T0, "S", -1), inv(T0 + 6 * MIN, "S", -1), inv(T0 + 20 * MIN, "S", -1), inv(T0 + 21 * MIN, "S", 1)]
    out = run([r], lines)
    # opened at 0m (lapses 5m), re-opened at 6m and 20m while still firing, closed at 21m
    assert commands(out) == [("open", "S"), ("open", "S"), ("open", "S"), ("close", "S")]
    r2 = rule(**NEG, breaker={**BRK, "ttl": "5m"})
    out2 = run([r2], [inv(T0, "S", -1), inv(T0 + 6 * MIN, "S", 1)])
    assert commands(out2) == [("open", "S")]  # lapsed at 5m, nothing to close at 6m


def test_scope_coarser_than_group_closes_when_the_last_group_resolves():
    r = rule(
        type="threshold",
        source="inventory",
        field="available",
        op="<",
        value=0,
        group_by=["sku", "warehouse"],
        breaker=BRK,
    )
    lines = [
        inv(T0, "S", -1, warehouse="A"),
        inv(T0 + 1, "S", -1, warehouse="B"),
        inv(T0 + 2, "S", 1, warehouse="A"),
        inv(T0 + 3, "S", 1, warehouse="B"),
    ]
    out = run([r], lines)
    assert commands(out) == [("open", "S"), ("close", "S")]
    assert [v["ts"][-6:] for t, _, v in out if t == "breaker-commands"] == ["0.000Z", "0.003Z"]


def test_shadow_rules_write_to_the_shadow_topic_and_never_command():
    r = rule(**NEG, breaker=BRK, mode="shadow")
    out = run([r], [inv(T0, "S", -1)])
    assert [t for t, _, _ in out] == ["alerts-shadow"] and out[0][2]["shadow"] is True


def test_message_template_and_labels():
    r = rule(**NEG, message="SKU {sku}: {value} < {threshold} ({rule_id})", labels={"team": "supply"})
    [(_, _, v)] = run([r], [inv(T0, "S", -7)])
    assert v["message"] == "SKU S: -7 < 0 (r)" and v["labels"] == {"team": "supply"}


def test_reload_keeps_state_of_unchanged_rules_and_resets_changed_ones():
    r1, r2 = rule(**NEG), rule(**{**NEG, "id": "other", "value": -10})
    eng = Engine([r1, r2])
    assert len(eng.process_line(inv(T0, "S", -20))) == 2
    report = eng.replace_rules([rule(**NEG), rule(**{**NEG, "id": "other", "value": -30})])
    assert report["kept"] == ["r"] and report["changed"] == ["other"]
    # r still knows S is firing (no repeat); the changed rule starts afresh
    out = eng.process_line(inv(T0 + MIN, "S", -40))
    assert alerts(out) == [("other", "firing", "S", 60)]


def test_firing_alerts_over_the_cap_are_forgotten_oldest_first_without_a_record():
    # Three SKUs go negative with a cap of 2: the oldest episode (A) is dropped
    # silently and counted; the newest two still resolve normally. A coming
    # back negative later is a new episode.
    r = rule(**NEG)
    eng = Engine([r], EngineConfig(max_groups_per_rule=2))
    out = []
    for ln in [
        inv(T0, "A", -1),
        inv(T0 + MIN, "B", -1),
        inv(T0 + 2 * MIN, "C", -1),
        inv(T0 + 3 * MIN, "A", 5),
        inv(T0 + 4 * MIN, "B", 5),
        inv(T0 + 5 * MIN, "A", -1),
    ]:
        out += eng.process_line(ln)
    assert alerts(out) == [
        ("r", "firing", "A", 0),
        ("r", "firing", "B", 60),
        ("r", "firing", "C", 120),
        ("r", "resolved", "B", 240),
        ("r", "firing", "A", 300),
    ]
    assert eng.runners["r"].life.evicted == 1
    assert eng.summary()["alerts_evicted"] == 1
    firing_a = [v["alert_id"] for t, _, v in out if t == "alerts" and v["group"] == {"sku": "A"}]
    assert len(set(firing_a)) == 2  # two episodes, two ids


def test_a_forgotten_alert_leaves_its_breaker_open_until_it_lapses_and_never_opens_it_twice():
    r = rule(
        **{**NEG, "group_by": ["sku", "warehouse"]},
        breaker={"action": "pause_sales", "scope": ["warehouse"], "ttl": "10m"},
    )
    eng = Engine([r], EngineConfig(max_groups_per_rule=1))
    out = []
    for ln in [
        inv(T0, "A", -1, warehouse="W1"),  # opens W1
        inv(T0 + MIN, "B", -1, warehouse="W2"),  # opens W2; A forgotten: W1 stays open, no close
        inv(T0 + 2 * MIN, "C", -1, warehouse="W1"),  # W1 still open: no second open; B forgotten
        inv(T0 + 3 * MIN, "C", 5, warehouse="W1"),  # C resolves: W1 closes
        inv(T0 + 4 * MIN, "D", -1, warehouse="W2"),  # W2 open until 11m: no second open
        inv(T0 + 12 * MIN, "E", -1, warehouse="W3"),  # D forgotten; W2's orphan lapsed and is dropped
        inv(T0 + 13 * MIN, "F", -1, warehouse="W2"),
    ]:  # W2 lapsed at 11m: a new open
        out += eng.process_line(ln)
    cmds = [(v["action"], v["scope"]["warehouse"]) for t, _, v in out if t == "breaker-commands"]
    assert cmds == [("open", "W1"), ("open", "W2"), ("close", "W1"), ("open", "W3"), ("open", "W2")]
    assert [a[1] for a in alerts(out)].count("resolved") == 1
    life = eng.runners["r"].life
    assert life.evicted == 4 and set(life.scopes) == {"warehouse=W2", "warehouse=W3"}
