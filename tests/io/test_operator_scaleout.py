"""Operator actions in scale-out mode: every worker serves the API for the
shards it holds, `breakers list` merges them, and an action sent to any
worker reaches the shard that owns its scope."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import inv
from tests.io.test_operator_kafka import RULES, cli
from tests.io.test_scaleout import sharded, two_workers

pytestmark = pytest.mark.kafka

SKUS = [f"SKU-{i}" for i in range(8)]


def merged(a, b) -> list[dict]:
    p = cli(a, "breakers", "list", "--json", "--api", f"http://127.0.0.1:{b.port}")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_breakers_list_merges_the_workers_and_a_close_reaches_the_owning_shard(broker, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(RULES)
    token = tmp_path / "token"
    token.write_text("t0ken")
    svc = sharded(broker, tmp_path)
    svc.env.update(ANOMALYD_RULES_DIR=str(rules), ANOMALYD_CONSOLE_TOKEN_FILE=str(token))
    now = int(time.time() * 1000)
    with two_workers(svc, [inv(now - 2000, sku, -1) for sku in SKUS]) as (a, b):
        a.wait(lambda: sorted(x["scope"]["sku"] for x in merged(a, b)) == SKUS, 60, "every breaker, once")
        mine = [json.loads(w.get("/api/breakers")[1]) for w in (a, b)]
        assert all(mine), "each worker holds some of the shards"
        # Close, through worker a, a breaker that worker b holds.
        sku = mine[1][0]["scope"]["sku"]
        p = cli(a, "breakers", "close", "r", f"sku={sku}", "--by", "bob", "--reason", "fine")
        assert p.returncode == 0, p.stderr
        a.wait(lambda: sku not in [x["scope"]["sku"] for x in merged(a, b)], 30, "the close")
        p = cli(a, "breakers", "close", "nope", "sku=X", "--by", "bob", "--reason", "typo")
        assert p.returncode == 0, p.stderr  # well-formed: refused when applied
        a.wait(lambda: any(d["reason_code"] == "unknown_rule" for d in a.outputs(idle_s=0.5)["dead-letter"]), 30, "x")
        out = a.outputs()
    closes = [c for c in out["breaker-commands"] if c["action"] == "close"]
    assert [(c["scope"], c["by"]) for c in closes] == [({"sku": sku}, "bob")]
    assert sorted(c["scope"]["sku"] for c in out["breaker-commands"] if c["action"] == "open") == SKUS
    assert [d["reason"] for d in out["dead-letter"]] == ["no enabled rule 'nope'"]  # once, not once per shard
