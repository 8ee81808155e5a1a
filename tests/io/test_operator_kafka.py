"""Operator actions through the real broker: a file of events and actions
gives the same commands and alerts live as in `anomalyd replay`; the API
and the CLI act through the service, and refuse without the token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.engine.test_actions import BRK, NEG, act
from tests.helpers import MIN, T0, inv
from tests.io.service import Service
from tests.io.test_worker import produce_lines, replay

pytestmark = pytest.mark.kafka

RULES = f"""rules:
  - {json.dumps({"id": "r", **NEG, "breaker": BRK})}
"""

LINES = [
    inv(T0, "S", -1),
    inv(T0, "T", -1),
    inv(T0, "U", -1),
    act(T0 + MIN, "ack", scope={"sku": "T"}, reason="on it"),
    act(T0 + 2 * MIN, "close", scope={"sku": "U"}, reason="stock is fine"),
    act(T0 + 2 * MIN, "hold_closed", until=T0 + 20 * MIN, reason="flash sale, wrong"),
    act(T0 + 3 * MIN, "hold_open", scope={"sku": "V"}, until=T0 + 30 * MIN, reason="fraud"),
    act(T0 + 3 * MIN, "close", scope={"sku": "Q"}, reason="no such breaker"),  # dead letter
    inv(T0 + 5 * MIN, "S", -2),
    inv(T0 + 10 * MIN, "T", 3),
    inv(T0 + 25 * MIN, "S", -1),  # the hold ended at 20m: reopened then
    inv(T0 + 26 * MIN, "U", 1),
    inv(T0 + 40 * MIN, "S", 2),  # V's hold_open ended at 30m: closed then
]


def essentials(out: dict) -> dict:
    """Per key, in order (Kafka keeps the order of a key, not across partitions)."""
    per: dict = {}
    for v in out["alerts"]:
        per.setdefault(("alert", v["fingerprint"]), []).append(
            (v["alert_id"], v["status"], v.get("ack"), v.get("hold"))
        )
    for c in out["breaker-commands"]:
        per.setdefault(("command", json.dumps(c["scope"])), []).append({k: x for k, x in c.items() if k != "_key"})
    per["dead-letter"] = [(v["reason_code"], v["reason"]) for v in out["dead-letter"]]
    return per


def test_actions_through_kafka_equal_replay_of_the_same_file(broker, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    out = replay(LINES, str(rules))
    ref = essentials(out)
    by = [(c["action"], c["scope"]["sku"], c.get("by")) for c in out["breaker-commands"]]
    assert by == [
        ("open", "S", None),
        ("open", "T", None),
        ("open", "U", None),
        ("close", "U", "ana"),
        ("close", "S", "ana"),
        ("open", "V", "ana"),
        ("close", "T", None),
        ("open", "S", None),  # the hold's end, in event time
        ("close", "V", None),
        ("close", "S", None),
    ]
    assert ref["dead-letter"] == [("not_open", "breaker sku=Q of rule r is not open")]
    acked = [(a["group"]["sku"], a["status"], a["ack"]["by"]) for a in out["alerts"] if a.get("ack")]
    assert acked == [("T", "resolved", "ana")]  # T's resolved record says who acked it
    svc = Service(broker.bootstrap, tmp_path, rules=rules)
    produce_lines(svc, LINES)
    svc.start()
    try:
        svc.wait_ready()
        svc.wait(lambda: len(svc.outputs(idle_s=0.5)["breaker-commands"]) >= len(by), 60, "the commands")
        live = essentials(svc.outputs())
    finally:
        svc.stop()
    assert live == ref


def _post(svc: Service, body: dict, token: str | None, ctype: str = "application/json") -> tuple[int, dict]:
    headers = {"Content-Type": ctype, **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(
        f"http://127.0.0.1:{svc.port}/api/actions", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def cli(svc: Service, *args: str, token_env: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in svc.env.items() if token_env or k != "ANOMALYD_CONSOLE_TOKEN_FILE"}
    return subprocess.run(
        [sys.executable, "-m", "anomalyd", *args, "--api", f"http://127.0.0.1:{svc.port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def live_service(broker, tmp_path, **env: str) -> Service:
    """A service whose breaker on sku=S is open (events at the wall clock)."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(RULES)
    svc = Service(broker.bootstrap, tmp_path, rules=rules, **env)
    now = int(time.time() * 1000)
    produce_lines(svc, [inv(now - 1000, "S", -5)])
    svc.start()
    svc.wait_ready()
    svc.wait(lambda: svc.get("/api/breakers")[1].count('"state": "open"') == 1, 30, "the breaker to open")
    return svc


def test_api_cli_and_token_refusals_through_the_service(broker, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    svc = live_service(broker, tmp_path, ANOMALYD_CONSOLE_TOKEN_FILE=str(token))
    try:
        (b,) = json.loads(svc.get("/api/breakers")[1])
        assert (b["rule_id"], b["scope"], b["state"], b["breaker"]) == ("r", {"sku": "S"}, "open", "pause_sales")
        (a,) = json.loads(svc.get("/api/alerts")[1])
        assert (a["group"], a["value"], a["breaker"]["state"], a["ack"]) == ({"sku": "S"}, -5, "open", None)
        (r,) = json.loads(svc.get("/api/rules")[1])
        assert (r["rule_id"], r["mode"], r["firing"], r["groups"]) == ("r", "live", 1, 1)
        assert r["last_fired"] == a["started_at"]
        close = {"action": "close", "rule_id": "r", "scope": {"sku": "S"}, "by": "eve", "reason": "x"}
        assert _post(svc, close, None)[0] == 401
        assert _post(svc, close, "wrong")[0] == 401
        assert _post(svc, close, "s3cret-token", ctype="text/plain")[0] == 415  # what a form could send
        code, reply = _post(svc, {**close, "reason": ""}, "s3cret-token")
        assert (code, reply["error"]) == (400, "close needs a reason")
        assert "breakers" in cli(svc, "breakers", "close", "r", "sku=S").stderr  # --reason is required
        p = cli(svc, "alerts", "ack", "r", "sku=S", "--by", "bob", "--reason", "looking", token_env=False)
        assert p.returncode == 1 and "refused (401)" in p.stderr  # no token given to the CLI
        env_token = ["--token-file", str(token)]  # the flag
        p = cli(svc, "alerts", "ack", "r", "sku=S", "--by", "bob", "--reason", "looking", *env_token, token_env=False)
        assert p.returncode == 0, p.stderr
        svc.wait(lambda: json.loads(svc.get("/api/alerts")[1])[0]["ack"] is not None, 20, "the ack")
        p = cli(svc, "breakers", "close", "r", "sku=S", "--by", "bob", "--reason", "stock is fine")  # the env's token
        assert p.returncode == 0, p.stderr
        svc.wait(lambda: json.loads(svc.get("/api/breakers")[1]) == [], 20, "the breaker to close")
        p = cli(svc, "breakers", "hold", "r", "sku=S", "--for", "1h", "--reason", "sale", "--by", "bob", *env_token)
        assert p.returncode == 0, p.stderr
        svc.wait(lambda: "held closed" in svc.get("/api/breakers")[1], 20, "the hold")
        listed = cli(svc, "breakers", "list")
        assert listed.returncode == 0
        head, row = listed.stdout.splitlines()
        assert head.split() == ["RULE", "BREAKER", "SCOPE", "STATE", "OPENED", "EXPIRES", "HOLD", "BY"]
        assert row.split()[:5] == ["r", "pause_sales", "sku=S", "held", "closed"] and row.split()[-1] == "bob"
        assert svc.metric("anomalyd_operator_actions_total") == 3  # ack, close, hold
        commands = svc.outputs()["breaker-commands"]
        assert [(c["action"], c.get("by"), c["reason"]) for c in commands] == [
            ("open", None, "r (sku=S): value -5, threshold 0"),
            ("close", "bob", "close by bob: stock is fine"),
        ]
    finally:
        svc.stop()
    assert 'operator action close by bob on r {"sku": "S"}: stock is fine' in svc.log()


def test_without_a_token_the_api_is_read_only(broker, tmp_path):
    svc = live_service(broker, tmp_path)
    try:
        assert json.loads(svc.get("/api/whoami")[1]) == {"actions": False}
        code, reply = _post(svc, {"action": "close", "rule_id": "r", "scope": {"sku": "S"}, "by": "x"}, "any")
        assert code == 403 and "read-only" in reply["error"]
        _, page = svc.get("/console")
        assert "Read-only: no console token is configured" in page
    finally:
        svc.stop()
