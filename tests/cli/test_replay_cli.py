"""`anomalyd replay` and `anomalyd simulate` as a user runs them."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from anomalyd.cli.ruletest import _expand_input
from anomalyd.engine.records import Alert, BreakerCommand, DeadLetter
from anomalyd.engine.timeutil import parse_ts

ANOMALYD = [sys.executable, "-m", "anomalyd"]
START = parse_ts("2026-06-18T00:00:00+08:00")


def cli(*args, stdin=None):
    return subprocess.run(ANOMALYD + list(args), capture_output=True, text=True, input=stdin)


def seed_stories() -> list[str]:
    """All seed stories in one stream, as analysts would replay last month's traffic."""
    items = [
        # flash sale: SKU-1 100 -> -50 in ten minutes, restock at 15m; SKU-2 healthy
        *[
            {"topic": "inventory", "ts": f"+{2 * i}m", "sku": "SKU-1", "available": a}
            for i, a in enumerate([100, 70, 40, 10, -20, -50])
        ],
        {"topic": "inventory", "ts": "+15m", "sku": "SKU-1", "available": 400},
        {"topic": "inventory", "repeat": 40, "every": "1m", "ts": "+20s", "sku": "SKU-2", "available": 300},
        # stacked promos -55% on SKU-A next to +20% on SKU-B
        *[
            {
                "topic": "orders",
                "ts": f"+{m}m5s",
                "order_id": "O",
                "sku": "SKU-A",
                "quantity": 1,
                "unit_price": p,
                "status": "paid",
                "channel": "app",
            }
            for m, p in [(1, 100), (2, 100), (3, 45), (4, 45)]
        ],
        *[
            {
                "topic": "orders",
                "ts": f"+{m}m6s",
                "order_id": "O",
                "sku": "SKU-B",
                "quantity": 1,
                "unit_price": p,
                "status": "paid",
                "channel": "app",
            }
            for m, p in [(1, 100), (3, 120)]
        ],
        # order feed: web and h5 keep going for 40 minutes, app goes silent after 5m
        {
            "topic": "orders",
            "repeat": 80,
            "every": "30s",
            "ts": "+7s",
            "order_id": "O",
            "sku": "SKU-Z",
            "quantity": 1,
            "unit_price": 5,
            "status": "paid",
            "channel": "web",
        },
        {
            "topic": "orders",
            "repeat": 80,
            "every": "30s",
            "ts": "+8s",
            "order_id": "O",
            "sku": "SKU-Z",
            "quantity": 1,
            "unit_price": 5,
            "status": "paid",
            "channel": "h5",
        },
        {
            "topic": "orders",
            "repeat": 10,
            "every": "30s",
            "ts": "+9s",
            "order_id": "O",
            "sku": "SKU-Z",
            "quantity": 1,
            "unit_price": 5,
            "status": "paid",
            "channel": "app",
        },
        # complaints on SKU-C: 1 -> 4 a minute; SKU-T 1 -> 3
        {
            "topic": "complaints",
            "repeat": 10,
            "every": "1m",
            "ts": "+30s",
            "ticket_id": "T",
            "category": "quality",
            "sku": "SKU-C",
        },
        {
            "topic": "complaints",
            "repeat": 40,
            "every": "15s",
            "ts": "+10m30s",
            "ticket_id": "T",
            "category": "quality",
            "sku": "SKU-C",
        },
        {"topic": "complaints", "ts": "+11m", "ticket_id": "T", "category": "quality", "sku": "SKU-T"},
        {
            "topic": "complaints",
            "repeat": 3,
            "every": "1m",
            "ts": "+16m",
            "ticket_id": "T",
            "category": "quality",
            "sku": "SKU-T",
        },
        # card payments: M-BAD 35% failed, M-OK 5%
        {
            "topic": "payments",
            "repeat": 65,
            "every": "9s",
            "ts": "+0s",
            "payment_id": "P",
            "order_id": "O",
            "amount": 100,
            "status": "succeeded",
            "method": "card",
            "merchant_id": "M-BAD",
        },
        *[
            {
                "topic": "payments",
                "repeat": 7,
                "every": "85s",
                "ts": f"+{5 + 17 * i}s",
                "payment_id": "P",
                "order_id": "O",
                "amount": 100,
                "status": "failed",
                "error_code": code,
                "method": "card",
                "merchant_id": "M-BAD",
            }
            for i, code in enumerate(["E_DECLINED", "E_RISK", "E_LIMIT", "E_3DS", "E_FUNDS"])
        ],
        {
            "topic": "payments",
            "repeat": 95,
            "every": "6s",
            "ts": "+1s",
            "payment_id": "P",
            "order_id": "O",
            "amount": 100,
            "status": "succeeded",
            "method": "card",
            "merchant_id": "M-OK",
        },
        {
            "topic": "payments",
            "repeat": 5,
            "every": "2m",
            "ts": "+2s",
            "payment_id": "P",
            "order_id": "O",
            "amount": 100,
            "status": "failed",
            "error_code": "E_RISK",
            "method": "card",
            "merchant_id": "M-OK",
        },
        # 17 transfers failing with one code within 8 minutes
        {
            "topic": "payments",
            "repeat": 17,
            "every": "28s",
            "ts": "+20m",
            "payment_id": "P",
            "order_id": "O",
            "amount": 500,
            "status": "failed",
            "method": "transfer",
            "error_code": "E_BANK_DOWN",
            "merchant_id": "M-T",
        },
    ]
    lines = _expand_input(items, START, "seed")
    # malformed lines mixed in
    bad = [
        "this is not json",
        '{"topic": "orders", "value": {"event_id": "x", "ts": 1}}',
        '{"topic": "inventory", "value": {"event_id": "y", "ts": 1781712000000, "sku": "S", "available": "3"}}',
        '{"topic": "refunds", "value": {"event_id": "z", "ts": 1781712000000}}',
        "[]",
    ]
    for i, b in enumerate(bad):
        lines.insert(50 + i * 40, b)
    return lines


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    f = tmp_path_factory.mktemp("seed") / "seed.jsonl"
    f.write_text("\n".join(seed_stories()) + "\n")
    p = cli("replay", str(f), "--rules", "rules", "--summary")
    assert p.returncode == 0, p.stderr
    return [json.loads(ln) for ln in p.stdout.splitlines()], p.stderr


def test_seed_stories_fire_exactly_the_expected_alerts(replayed):
    out, _ = replayed
    got = Counter(
        (r["value"]["rule_id"], json.dumps(r["value"]["group"]), r["value"]["status"])
        for r in out
        if r["topic"] == "alerts"
    )
    assert got == Counter(
        {
            ("negative-stock", '{"sku": "SKU-1"}', "firing"): 1,
            ("negative-stock", '{"sku": "SKU-1"}', "resolved"): 1,
            ("order-price-swing", '{"sku": "SKU-A"}', "firing"): 1,
            ("order-price-swing", '{"sku": "SKU-A"}', "resolved"): 1,
            ("order-feed-silent", '{"channel": "app"}', "firing"): 1,
            ("complaint-surge", '{"sku": "SKU-C"}', "firing"): 1,
            ("complaint-surge", '{"sku": "SKU-C"}', "resolved"): 1,
            ("payment-failure-ratio", '{"merchant_id": "M-BAD"}', "firing"): 1,
            ("payment-failure-ratio", '{"merchant_id": "M-BAD"}', "resolved"): 1,  # its payments stop at ~10m
            # both merchants' payments stop: takings fall to nothing (for 2m), then the window empties
            ("takings-drop", '{"merchant_id": "M-BAD"}', "firing"): 1,
            ("takings-drop", '{"merchant_id": "M-BAD"}', "resolved"): 1,
            ("takings-drop", '{"merchant_id": "M-OK"}', "firing"): 1,
            ("takings-drop", '{"merchant_id": "M-OK"}', "resolved"): 1,
            ("payment-error-burst", '{"method": "transfer", "error_code": "E_BANK_DOWN"}', "firing"): 1,
            ("payment-error-burst", '{"method": "transfer", "error_code": "E_BANK_DOWN"}', "resolved"): 1,
        }
    )


def test_seed_stories_breakers_and_dead_letters(replayed):
    out, summary = replayed
    cmds = [
        (r["value"]["action"], r["value"]["breaker"], json.dumps(r["value"]["scope"]))
        for r in out
        if r["topic"] == "breaker-commands"
    ]
    assert sorted(cmds) == sorted(
        [
            ("open", "pause_sales", '{"sku": "SKU-1"}'),
            ("close", "pause_sales", '{"sku": "SKU-1"}'),
            ("open", "pause_sales", '{"sku": "SKU-C"}'),
            ("close", "pause_sales", '{"sku": "SKU-C"}'),
            ("open", "pause_payments", '{"merchant_id": "M-BAD"}'),
            ("close", "pause_payments", '{"merchant_id": "M-BAD"}'),
        ]
    )
    dead = [r["value"] for r in out if r["topic"] == "dead-letter"]
    assert [d["reason_code"] for d in dead] == [
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unknown_topic",
        "not_object",
    ]
    assert all(d["line"] and d["original"] for d in dead)
    for r in out:
        {"alerts": Alert, "breaker-commands": BreakerCommand, "dead-letter": DeadLetter}[r["topic"]].model_validate(
            r["value"]
        )
    assert "5 dead letters" in summary


def test_kcat_json_envelopes_replay_like_plain_lines(tmp_path):
    plain = seed_stories()[:300]
    kcat = []
    for n, ln in enumerate(plain):
        try:
            env = json.loads(ln)
            kcat.append(
                json.dumps(
                    {
                        "topic": env["topic"],
                        "partition": 0,
                        "offset": n,
                        "key": None,
                        "payload": json.dumps(env["value"]),
                    }
                )
            )
        except (ValueError, TypeError, KeyError):
            kcat.append(ln)
    (tmp_path / "a.jsonl").write_text("\n".join(plain))
    (tmp_path / "b.jsonl").write_text("\n".join(kcat))
    a = cli("replay", str(tmp_path / "a.jsonl"), "--rules", "rules").stdout
    b = cli("replay", str(tmp_path / "b.jsonl"), "--rules", "rules").stdout

    def strip(s):
        return [{k: v for k, v in json.loads(x)["value"].items() if k != "original"} for x in s.splitlines()]

    assert strip(a) == strip(b) and len(a.splitlines()) >= 3


def test_replay_reads_stdin_and_is_deterministic():
    data = "\n".join(seed_stories())
    a = cli("replay", "-", "--rules", "rules", stdin=data)
    b = cli("replay", "-", "--rules", "rules", stdin=data)
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout


def test_replay_refuses_broken_rules_with_exit_1(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - id: x\n    type: nope\n")
    p = cli("replay", "-", "--rules", str(tmp_path), stdin="")
    assert p.returncode == 1 and ":3:11: unknown rule type 'nope'" in p.stderr


def test_simulate_is_seeded_and_its_labelled_anomalies_are_caught(tmp_path):
    a = cli("simulate", "--minutes", "70", "--seed", "3").stdout
    b = cli("simulate", "--minutes", "70", "--seed", "3").stdout
    assert a == b
    lines = a.splitlines()
    assert len(lines) > 70 * 60 * 15
    labels = Counter(json.loads(ln).get("label") for ln in lines)
    assert set(labels) - {None} >= {
        "oversell",
        "price-drop",
        "payment-spike",
        "complaint-surge",
        "failure-ratio",
        "error-burst",
    }
    (tmp_path / "sim.jsonl").write_text(a)
    out = cli("replay", str(tmp_path / "sim.jsonl"), "--rules", "rules").stdout
    fired = Counter(json.loads(ln)["value"]["rule_id"] for ln in out.splitlines() if '"status":"firing"' in ln)
    for rule_id in (
        "negative-stock",
        "order-price-swing",
        "payment-amount-swing",
        "complaint-surge",
        "payment-failure-ratio",
        "order-feed-silent",
        "unpaid-orders-holding-stock",
        "payment-order-mismatch",
        "payment-channel-incident",
        "price-below-floor",
    ):
        assert 1 <= fired[rule_id] <= 2, (rule_id, fired)
    # the error burst, and the three codes of the channel incident
    assert 4 <= fired["payment-error-burst"] <= 8, fired


def test_progress_bar_only_when_stderr_is_a_terminal(tmp_path):
    import os
    import pty

    f = tmp_path / "big.jsonl"
    f.write_text("\n".join(seed_stories() * 8))
    env = {**os.environ, "ANOMALYD_PROGRESS_MIN_BYTES": "1000", "COLUMNS": "80"}
    master, slave = pty.openpty()
    p = subprocess.run(ANOMALYD + ["replay", str(f), "--rules", "rules"], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    plain = subprocess.run(ANOMALYD + ["replay", str(f), "--rules", "rules"], capture_output=True, env=env)
    assert p.returncode == 0 and p.stdout == plain.stdout  # the bar never touches stdout
    assert b"replay" in tty and b"\x1b[" in tty  # drawn on the terminal
    assert plain.stderr == b""  # nothing when stderr is a pipe
