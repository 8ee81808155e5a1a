"""Scale-out semantics, without Kafka: shards that each own a hash range of
the groups, fed only the events routed to them and moved along by the whole
stream's time, say together exactly what one engine says."""

from __future__ import annotations

import functools
import json

import pytest

from anomalyd.engine.decode import decode_line
from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules
from anomalyd.engine.sharding import shard_of
from anomalyd.simulate import generate
from tests.cli.test_replay_cli import seed_stories


def _lines(n_minutes: int, seed: int) -> list[str]:
    return [json.dumps({"topic": e["topic"], "value": e["value"]}) for e in generate(seed=seed, minutes=n_minutes)]


def _canon(outs) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in outs)


def _sharded(lines: list[str], count: int) -> tuple[list, list[int]]:
    rules = load_rules("rules")
    router = Engine(rules)
    shards = [Engine(rules) for _ in range(count)]
    for i, eng in enumerate(shards):
        eng.set_shard(i, count)
    out, routed = [], [0] * count
    for ln in lines:
        try:
            topic, ev = decode_line(ln)
        except Exception:
            continue
        to = router.route(topic, ev, count)
        for i, eng in enumerate(shards):
            if i in to:
                routed[i] += 1
                out.extend(eng.process_event(topic, ev))
            else:  # the watermark of the whole stream reaches every shard
                out.extend(eng.advance_to(ev.ts))
    return out, routed


def _single(lines: list[str]) -> list:
    eng = Engine(load_rules("rules"))
    out = []
    for ln in lines:
        try:
            topic, ev = decode_line(ln)
        except Exception:
            continue
        out.extend(eng.process_event(topic, ev))
    return out


@functools.lru_cache(maxsize=1)
def _traffic() -> tuple[list[str], list]:
    """140 simulated minutes and one engine's output on them (shared by the counts)."""
    lines = _lines(140, seed=21)
    return lines, _single(lines)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_shards_together_equal_one_engine_on_simulated_traffic(count):
    lines, one = _traffic()
    many, routed = _sharded(lines, count)
    assert len(one) > 20  # the simulator's anomalies fire alerts and commands
    assert _canon(many) == _canon(one)
    assert all(n > 0 for n in routed)  # every shard did real work
    assert sum(routed) < 2 * len(lines)  # routing is not a broadcast


def test_shards_together_equal_one_engine_on_seed_stories():
    lines = [ln for ln in seed_stories() if '"refunds"' not in ln]
    lines = [ln for ln in lines if ln.strip().startswith("{")]
    one = _single(lines)
    many, _ = _sharded(lines, 3)
    assert one and _canon(many) == _canon(one)


def test_shard_of_is_stable_across_processes():
    # A salted hash would differ per process; these values are fixed forever,
    # since routers and shards in different processes must agree.
    assert [shard_of(k, 8) for k in ("SKU-1", "M-7", 42, ("a", "b"), "")] == [
        shard_of(k, 8) for k in ("SKU-1", "M-7", 42, ("a", "b"), "")
    ]
    import subprocess
    import sys

    code = "from anomalyd.engine.sharding import shard_of; print([shard_of(k, 8) for k in ('SKU-1', 'M-7', 42, ('a', 'b'), '')])"
    a = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "1"}).stdout
    b = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "2"}).stdout
    assert a == b and a.strip() == str([shard_of(k, 8) for k in ("SKU-1", "M-7", 42, ("a", "b"), "")])


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_together_equal_one_engine_with_the_second_edition_types(count, tmp_path):
    import yaml

    from tests.engine.types.test_second_edition import RULES, _stream

    (tmp_path / "new.yaml").write_text(yaml.safe_dump({"rules": [dict(r) for r in RULES]}))
    rules = load_rules(tmp_path)
    lines = _stream()
    eng = Engine(rules)
    one = [x for ln in lines for x in eng.process_event(*decode_line(ln))]
    assert {v["rule_id"] for t, _, v in one if t == "alerts"} >= {"floor", "neg", "coupon", "takings"}
    router, shards = Engine(rules), [Engine(rules) for _ in range(count)]
    for i, s in enumerate(shards):
        s.set_shard(i, count)
    many = []
    for ln in lines:
        topic, ev = decode_line(ln)
        to = router.route(topic, ev, count)
        for i, s in enumerate(shards):
            many.extend(s.process_event(topic, ev) if i in to else s.advance_to(ev.ts))
    assert _canon(many) == _canon(one)


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_together_equal_one_engine_with_sequence_and_correlate(count):
    """A sequence's key (order_id) and group (sku) hash to different shards,
    and a correlate rule's inputs fire on any: such rules are pinned, with
    every rule they read, to one shard (notes/derived-records.md)."""
    lines = [
        json.dumps({"topic": e["topic"], "value": e["value"]})
        for e in generate(
            seed=5,
            minutes=75,
            anomalies=["unpaid-orders", "amount-mismatch", "channel-incident", "complaint-surge", "oversell"],
        )
    ]
    rules = load_rules("rules")
    eng = Engine(rules)
    one = [x for ln in lines for x in eng.process_event(*decode_line(ln))]
    fired = {v["rule_id"] for t, _, v in one if t == "alerts"}
    assert {"unpaid-orders-holding-stock", "payment-order-mismatch", "payment-channel-incident"} <= fired
    router, shards = Engine(rules), [Engine(rules) for _ in range(count)]
    for i, s in enumerate(shards):
        s.set_shard(i, count)
    many, routed = [], [0] * count
    for ln in lines:
        topic, ev = decode_line(ln)
        to = router.route(topic, ev, count)
        for i, s in enumerate(shards):
            if i in to:
                routed[i] += 1
            many.extend(s.process_event(topic, ev) if i in to else s.advance_to(ev.ts))
    assert _canon(many) == _canon(one)
    if count > 1:
        assert all(routed), routed  # the other rules still spread over every shard
