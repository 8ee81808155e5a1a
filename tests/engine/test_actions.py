"""Operator actions in the engine: their effect on commands and alerts, in
event time, refusals as dead letters, and snapshots at any point."""

import json

import pytest

from anomalyd.engine.records import Alert, BreakerCommand, DeadLetter
from tests.helpers import MIN, T0, alerts, inv, restored_run, rule, run

NEG = dict(type="threshold", source="inventory", field="available", op="<", value=0, group_by=["sku"])
BRK = {"action": "pause_sales", "scope": ["sku"], "ttl": "30m"}


def act(ts: int, action: str, **kw) -> str:
    v = {"action": action, "rule_id": "r", "scope": {"sku": "S"}, "by": "ana", "ts": ts, **kw}
    return json.dumps({"topic": "operator-actions", "value": v})


def cmds(out):
    """(action, ts minute, by) of each command."""
    from anomalyd.engine.timeutil import parse_ts

    return [(v["action"], (parse_ts(v["ts"]) - T0) // MIN, v.get("by")) for t, _, v in out if t == "breaker-commands"]


def dead(out):
    return [(v["reason_code"], v["reason"]) for t, _, v in out if t == "dead-letter"]


def check_models(out):
    for t, _, v in out:
        {"alerts": Alert, "breaker-commands": BreakerCommand, "dead-letter": DeadLetter}[t].model_validate(v)


def test_close_closes_now_and_the_firing_episode_does_not_reopen_it():
    lines = [
        inv(T0, "S", -1),
        act(T0 + MIN, "close", reason="flash sale, stock is fine"),
        inv(T0 + 2 * MIN, "S", -1),
        inv(T0 + 40 * MIN, "S", -1),  # past the ttl: still no reopen for this episode
        inv(T0 + 41 * MIN, "S", 2),  # resolves: no close, it is closed
        inv(T0 + 42 * MIN, "S", -1),  # a new episode opens again
    ]
    out = run([rule(**NEG, breaker=BRK)], lines)
    check_models(out)
    assert cmds(out) == [("open", 0, None), ("close", 1, "ana"), ("open", 42, None)]
    close = [v for t, _, v in out if t == "breaker-commands"][1]
    assert close["reason"] == "close by ana: flash sale, stock is fine"
    assert alerts(out) == [("r", "firing", "S", 0), ("r", "resolved", "S", 41 * 60), ("r", "firing", "S", 42 * 60)]


def test_hold_closed_suppresses_opening_until_it_ends_then_opens_if_still_firing():
    lines = [
        inv(T0, "S", -1),
        act(T0 + MIN, "hold_closed", until=T0 + 60 * MIN, reason="wrong, do not pause for an hour"),
        inv(T0 + 2 * MIN, "S", 3),  # resolves while held: no command
        inv(T0 + 3 * MIN, "S", -1),  # a new episode, held: no open, and its alert says so
        inv(T0 + 61 * MIN, "S", -2),
    ]
    out = run([rule(**NEG, breaker=BRK)], lines)
    check_models(out)
    assert cmds(out) == [("open", 0, None), ("close", 1, "ana"), ("open", 60, None)]
    fired = [v for t, _, v in out if t == "alerts" and v["status"] == "firing"]
    assert "hold" not in fired[0]
    assert fired[1]["hold"] == {
        "action": "hold_closed",
        "until": "2026-06-17T17:00:00.000Z",
        "by": "ana",
        "reason": "wrong, do not pause for an hour",
    }
    reopened = [v for t, _, v in out if t == "breaker-commands"][-1]
    assert reopened["ts"] == "2026-06-17T17:00:00.000Z"  # at `until`, in event time
    assert reopened["expires_at"] == "2026-06-17T17:30:00.000Z"


def test_a_hold_that_ends_with_nothing_firing_leaves_the_breaker_closed():
    lines = [
        inv(T0, "S", -1),
        act(T0 + MIN, "hold_closed", until=T0 + 10 * MIN, reason="r"),
        inv(T0 + 2 * MIN, "S", 3),
        inv(T0 + 20 * MIN, "S", 3),
    ]
    assert cmds(run([rule(**NEG, breaker=BRK)], lines)) == [("open", 0, None), ("close", 1, "ana")]


def test_hold_open_keeps_it_open_whatever_the_alerts_do_then_closes():
    lines = [
        act(T0, "hold_open", until=T0 + 90 * MIN, reason="fraud investigation"),  # nothing fires: opens anyway
        inv(T0 + MIN, "S", -1),  # fires: already open
        inv(T0 + 2 * MIN, "S", 5),  # resolves: stays open
        inv(T0 + 100 * MIN, "S", 5),
    ]
    out = run([rule(**NEG, breaker=BRK)], lines)
    check_models(out)
    assert cmds(out) == [("open", 0, "ana"), ("close", 90, None)]
    opened, closed = [v for t, _, v in out if t == "breaker-commands"]
    assert opened["expires_at"] == "2026-06-17T17:30:00.000Z"  # the hold's end, not the ttl
    assert opened["alert_id"] == ""
    assert closed["reason"] == "hold ended (hold_open by ana: fraud investigation)"
    assert [v["hold"]["action"] for t, _, v in out if t == "alerts"] == ["hold_open", "hold_open"]


def test_release_ends_a_hold_now():
    lines = [
        inv(T0, "S", -1),
        act(T0 + MIN, "hold_closed", until=T0 + 60 * MIN, reason="r"),
        act(T0 + 5 * MIN, "release", reason="it was right after all"),
        inv(T0 + 6 * MIN, "S", -1),
    ]
    out = run([rule(**NEG, breaker=BRK)], lines)
    assert cmds(out) == [("open", 0, None), ("close", 1, "ana"), ("open", 5, "ana")]
    assert [v for t, _, v in out if t == "breaker-commands"][-1]["reason"] == (
        "still firing after the hold: released by ana: it was right after all"
    )


def test_ack_marks_the_episode_and_its_resolved_record_says_who():
    lines = [
        inv(T0, "S", -1),
        inv(T0, "T", -1),
        act(T0 + MIN, "ack", reason="looking into it"),
        inv(T0 + 2 * MIN, "S", 1),
        inv(T0 + 2 * MIN, "T", 1),
        inv(T0 + 3 * MIN, "S", -1),  # a new episode: not acked
    ]
    out = run([rule(**NEG)], lines)
    check_models(out)
    recs = [(v["group"]["sku"], v["status"], v.get("ack")) for t, _, v in out if t == "alerts"]
    acked = {"by": "ana", "reason": "looking into it", "ts": "2026-06-17T16:01:00.000Z"}
    assert recs == [
        ("S", "firing", None),
        ("T", "firing", None),
        ("S", "resolved", acked),
        ("T", "resolved", None),
        ("S", "firing", None),
    ]


@pytest.mark.parametrize(
    ("value", "code", "reason"),
    [
        ({"action": "close", "rule_id": "nope", "reason": "x"}, "unknown_rule", "no enabled rule 'nope'"),
        ({"action": "close", "scope": {"region": "N"}, "reason": "x"}, "bad_scope", "scope must name sku"),
        ({"action": "close", "scope": {"sku": "Q"}, "reason": "x"}, "not_open", "breaker sku=Q of rule r is not open"),
        ({"action": "release"}, "no_hold", "breaker sku=S of rule r is not held"),
        ({"action": "ack", "scope": {"sku": "Q"}}, "no_alert", "rule r has no firing alert for sku=Q"),
        ({"action": "close"}, "missing_field", "close needs a reason"),
        ({"action": "hold_open", "reason": "x"}, "missing_field", "hold_open needs until"),
        ({"action": "hold_open", "reason": "x", "until": T0}, "invalid_field", "until must be later than ts"),
        ({"action": "close", "reason": "x", "until": T0 + MIN * 9}, "invalid_field", "until is only for"),
        ({"action": "pause", "reason": "x"}, "invalid_field", "action: Input should be"),
        ({"action": "close", "reason": "x", "who": "me"}, "invalid_field", "unknown field who"),
        ({"action": "close", "reason": "x", "by": ""}, "invalid_field", "by: String should have at least 1"),
    ],
)
def test_bad_actions_go_to_the_dead_letter_with_a_reason(value, code, reason):
    line = act(T0 + 2 * MIN, **{"action": "close", **value})
    out = run([rule(**NEG, breaker=BRK)], [inv(T0, "S", -1), line])
    check_models(out)
    (got,) = dead(out)
    assert got[0] == code and got[1].startswith(reason), got
    assert cmds(out) == [("open", 0, None)]  # nothing else happened


def test_an_action_later_than_allowed_lateness_is_refused_not_dropped():
    out = run([rule(**NEG, breaker=BRK)], [inv(T0 + 10 * MIN, "S", -1), act(T0, "close", reason="x")])
    assert dead(out) == [("late_action", "ts is older than the stream's time by more than allowed_lateness")]


def test_shadow_rules_have_no_breaker_to_act_on():
    out = run([rule(**NEG, breaker=BRK, mode="shadow")], [inv(T0, "S", -1), act(T0, "close", reason="x")])
    assert dead(out) == [("no_breaker", "rule r has no breaker (shadow mode)")]


STREAM = [
    inv(T0, "S", -1),
    inv(T0, "T", -1),
    act(T0 + MIN, "ack", scope={"sku": "T"}, reason="mine"),
    act(T0 + 2 * MIN, "hold_closed", until=T0 + 30 * MIN, reason="wrong"),
    inv(T0 + 3 * MIN, "S", 2),
    inv(T0 + 4 * MIN, "S", -3),
    act(T0 + 5 * MIN, "hold_open", scope={"sku": "U"}, until=T0 + 50 * MIN, reason="fraud"),
    act(T0 + 6 * MIN, "close", scope={"sku": "T"}, reason="fine"),
    inv(T0 + 20 * MIN, "T", -1),
    inv(T0 + 35 * MIN, "S", -1),
    inv(T0 + 40 * MIN, "T", 4),
    inv(T0 + 60 * MIN, "S", 4),
]


def test_holds_acks_and_closes_survive_a_restore_at_any_point():
    r = lambda: [rule(**NEG, breaker=BRK)]  # noqa: E731
    whole = run(r(), STREAM)
    assert len(cmds(whole)) >= 6 and any(v.get("ack") for t, _, v in whole if t == "alerts")
    for cut in range(len(STREAM) + 1):
        assert restored_run(r, STREAM, cut) == whole, cut


def test_an_action_from_the_future_is_refused_by_line_and_by_event():
    from anomalyd.engine.actions import OPERATOR, decode_action_line
    from anomalyd.engine.engine import Engine

    far = T0 + 400 * 24 * 60 * MIN  # the tests' wall clock is set at T0
    eng = Engine([rule(**NEG, breaker=BRK)])
    eng.wall = lambda: T0 / 1000
    line = act(far, "close", reason="x")
    assert dead(eng.process_line(line)) == [("future_ts", "ts is more than 1d ahead of the wall clock")]
    out = eng.process_event(OPERATOR, decode_action_line(line))  # the way backtest hands it over
    assert dead(out) == [("future_ts", "ts is more than 1d ahead of the wall clock")]
