"""Event-time windows: verdicts change when contents change, moved by any event's time."""

from anomalyd.engine.engine import Engine
from anomalyd.engine.types import EngineConfig
from tests.helpers import MIN, T0, alerts, cmp, inv, order, pay, rule, run

COUNT = dict(
    type="count",
    source="payments",
    window="10m",
    op=">=",
    value=3,
    group_by=["merchant_id"],
    where=[{"field": "status", "op": "==", "value": "failed"}],
)


def test_count_resolves_when_events_age_out_moved_by_other_groups_events():
    lines = [pay(T0 + i * MIN, "failed", merchant_id="M1") for i in range(3)]
    # Only M2's events move time on after this; M1's window must still empty.
    lines += [pay(T0 + (3 + i) * MIN, "succeeded", merchant_id="M2") for i in range(12)]
    got = alerts(run([rule(**COUNT)], lines))
    assert got[0] == ("r", "firing", "M1", 120)
    # bucket of 1 minute (a tenth of 10m): the first failure leaves at 10m
    assert got[1] == ("r", "resolved", "M1", 600)
    assert len(got) == 2


def test_replay_never_flushes_at_the_end_of_input():
    lines = [pay(T0 + i * MIN, "failed", merchant_id="M1") for i in range(3)]
    assert alerts(run([rule(**COUNT)], lines)) == [("r", "firing", "M1", 120)]


def test_out_of_order_within_allowed_lateness_counts_later_ones_do_not():
    r = rule(**COUNT)
    base = [pay(T0 + 5 * MIN, "failed", merchant_id="M1"), pay(T0 + 6 * MIN, "failed", merchant_id="M1")]
    late_ok = pay(T0 + 5 * MIN + 30_000, "failed", merchant_id="M1")  # 30s behind
    assert alerts(run([r], base + [late_ok])) == [("r", "firing", "M1", 360)]
    too_late = pay(T0 + 4 * MIN, "failed", merchant_id="M1")  # 2m behind
    eng = Engine([r], EngineConfig(allowed_lateness_ms=MIN))
    out = [o for ln in base + [too_late] for o in eng.process_line(ln)]
    assert alerts(out) == [] and eng.late == 1 and eng.disorder == 0
    eng = Engine([r], EngineConfig(allowed_lateness_ms=5 * MIN))
    out = [o for ln in base + [too_late] for o in eng.process_line(ln)]
    assert alerts(out) == [("r", "firing", "M1", 360)] and eng.late == 0
    assert eng.disorder == 1  # evaluated, and counted: live output may differ from replay


def test_future_events_are_refused_so_one_bad_clock_cannot_fast_forward_time():
    r = rule(**COUNT)
    eng = Engine([r], EngineConfig(max_future_skew_ms=60 * MIN))
    eng.wall = lambda: (T0 + 5 * MIN) / 1000  # the guard's reference is the wall clock
    out = eng.process_line(pay(T0, "failed", merchant_id="M1"))
    out += eng.process_line(pay(T0 + 10 * 24 * 60 * MIN, "failed", merchant_id="M1"))  # 10 days ahead
    out += eng.process_line(pay(T0 + 60 * MIN, "failed", merchant_id="M1"))  # within the skew of the wall clock
    assert [t for t, _, _ in out] == ["dead-letter"] and out[0][2]["reason_code"] == "future_ts"
    assert "ahead of the wall clock" in out[0][2]["reason"]
    assert eng.clock.now == T0 + 60 * MIN
    ahead = pay(T0 + 3 * 60 * MIN, "failed", merchant_id="M1")  # replay names the line and keeps its text
    dead = eng.process_line(ahead, 7)[0][2]
    assert (dead["reason_code"], dead["line"], dead["original"]) == ("future_ts", 7, ahead)


def test_a_first_event_from_a_clock_stuck_in_the_past_does_not_make_every_later_event_the_future():
    # The stream's time starts at the first event; had the guard been relative
    # to it, every real event after a ts-0 one would have been refused.
    r = rule(**COUNT)
    eng = Engine([r], EngineConfig())
    out = eng.process_line(pay(0, "failed", merchant_id="M1"))
    for i in range(5):
        out += eng.process_line(pay(T0 + i * 1000, "failed", merchant_id="M1"))
    assert not [o for o in out if o[0] == "dead-letter"]
    assert eng.consumed["payments"] == 6 and eng.clock.now == T0 + 4000


SURGE = dict(type="surge", source="complaints", window="5m", pct=50, min_count=5, group_by=["sku"])


def test_surge_compares_window_over_window_with_min_count():
    lines = [cmp(T0 + i * MIN + 1000, "A") for i in range(10)]  # 1/min
    lines += [cmp(T0 + 10 * MIN + i * 20_000, "A") for i in range(15)]  # 3/min
    lines += [cmp(T0 + 10 * MIN + 500, "B"), cmp(T0 + 11 * MIN, "B"), cmp(T0 + 12 * MIN, "B")]  # 0 -> 3
    got = alerts(run([rule(**SURGE)], lines))
    assert [g[:3] for g in got] == [("r", "firing", "A")]


def test_surge_does_not_judge_before_two_windows_of_history():
    lines = [cmp(T0 + i * 10_000, "A") for i in range(20)]  # a busy start is not a surge
    assert alerts(run([rule(**SURGE)], lines)) == []


def test_absence_fires_while_other_traffic_moves_time_and_resolves_on_return():
    r = rule(type="absence", source="orders", window="5m", group_by=["channel"])
    lines = [order(T0 + i * 30_000, channel="web") for i in range(30)]
    lines += [order(T0, channel="app"), order(T0 + 15 * MIN, channel="app")]
    lines.sort(key=lambda ln: __import__("json").loads(ln)["value"]["ts"])
    assert alerts(run([r], lines)) == [("r", "firing", "app", 300), ("r", "resolved", "app", 900)]


def test_global_absence_starts_its_clock_at_the_first_event():
    r = rule(type="absence", source="complaints", window="10m")
    lines = [order(T0 + i * MIN) for i in range(12)]
    assert alerts(run([r], lines)) == [("r", "firing", 600)]


def test_ratio_needs_min_count_in_the_denominator():
    r = rule(
        type="ratio",
        source="payments",
        window="10m",
        numerator=[{"field": "status", "op": "==", "value": "failed"}],
        op=">",
        value=0.5,
        min_count=4,
        group_by=["merchant_id"],
    )
    lines = [pay(T0 + i * 1000, "failed", merchant_id="M") for i in range(3)]
    assert alerts(run([r], lines)) == []
    assert alerts(run([r], lines + [pay(T0 + 5000, "succeeded", merchant_id="M")])) == [("r", "firing", "M", 5)]


def test_change_mean_baseline_and_direction():
    r = rule(
        type="change",
        source="payments",
        field="amount",
        pct=30,
        baseline="mean",
        window="30m",
        direction="up",
        group_by=["merchant_id"],
    )
    lines = [pay(T0 + i * MIN, amount=100, merchant_id="M") for i in range(5)]
    down = alerts(run([r], lines + [pay(T0 + 6 * MIN, amount=10, merchant_id="M")]))
    up = alerts(run([r], lines + [pay(T0 + 6 * MIN, amount=140, merchant_id="M")]))
    assert down == [] and up == [("r", "firing", "M", 360)]


def test_events_lacking_a_group_by_field_are_skipped_not_grouped_under_null():
    r = rule(type="threshold", source="inventory", field="available", op="<", value=0, group_by=["warehouse"])
    assert alerts(run([r], [inv(T0, "S", -1)])) == []
    assert alerts(run([r], [inv(T0, "S", -1, warehouse="W1")])) == [("r", "firing", "W1", 0)]


def test_attrs_fields_in_conditions_and_group_by():
    r = rule(type="threshold", source="inventory", field="attrs.temp", op=">", value=8, group_by=["attrs.lot"])
    got = alerts(
        run(
            [r],
            [inv(T0, "S", 1, attrs={"lot": "L1", "temp": 9.5}), inv(T0, "S", 1, attrs={"lot": "L2", "temp": "hot"})],
        )
    )
    assert got == [("r", "firing", "L1", 0)]
