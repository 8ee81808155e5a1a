"""Shared helpers: build events and rules tersely, run the engine on them."""

from __future__ import annotations

import json
from typing import Any

from anomalyd.engine.engine import Engine
from anomalyd.engine.types import RULE_TYPES, EngineConfig

T0 = 1_781_712_000_000  # 2026-06-18T00:00:00+08:00
MIN = 60_000


def rule(**kw: Any):
    kw.setdefault("id", "r")
    return RULE_TYPES[kw["type"]].model_validate(kw)


def line(topic: str, ts: int, eid: str | None = None, **fields: Any) -> str:
    line.n += 1  # type: ignore[attr-defined]
    return json.dumps({"topic": topic, "value": {"event_id": eid or f"e{line.n}", "ts": ts, **fields}})  # type: ignore[attr-defined]


line.n = 0  # type: ignore[attr-defined]


def inv(ts: int, sku: str, available: int, **kw: Any) -> str:
    return line("inventory", ts, sku=sku, available=available, **kw)


def cmp(ts: int, sku: str, **kw: Any) -> str:
    return line("complaints", ts, ticket_id="T", category="quality", sku=sku, **kw)


def pay(ts: int, status: str = "succeeded", **kw: Any) -> str:
    return line("payments", ts, payment_id="P", order_id="O", amount=kw.pop("amount", 10), status=status, **kw)


def order(ts: int, sku: str = "S", **kw: Any) -> str:
    return line(
        "orders", ts, order_id="O", sku=sku, quantity=1, unit_price=kw.pop("unit_price", 10), status="paid", **kw
    )


def run(rules: list, lines: list[str], **config: Any) -> list[tuple[str, str, dict]]:
    eng = Engine(rules, EngineConfig(**config))
    out = []
    for ln in lines:
        out.extend(eng.process_line(ln))
    return out


def restored_run(make_rules, lines: list[str], cut: int) -> list:
    """The outputs of `lines` when the engine stops after `cut` of them and a
    fresh engine of `make_rules()` goes on from its snapshot."""
    from anomalyd.engine import snapshot

    eng = Engine(make_rules())
    out = [x for ln in lines[:cut] for x in eng.process_line(ln)]
    eng2 = Engine(make_rules())
    snapshot.load(eng2, snapshot.dump(eng))
    return out + [x for ln in lines[cut:] for x in eng2.process_line(ln)]


def alerts(outs: list) -> list[tuple]:
    """(rule_id, status, group values..., ts offset in seconds) for terse asserts."""
    from anomalyd.engine.timeutil import parse_ts

    return [
        (v["rule_id"], v["status"], *v["group"].values(), (parse_ts(v["ts"]) - T0) // 1000)
        for t, _, v in outs
        if t in ("alerts", "alerts-shadow")
    ]


def commands(outs: list) -> list[tuple]:
    return [(v["action"], *v["scope"].values()) for t, _, v in outs if t == "breaker-commands"]


def load_bench(name: str):
    """bench/NAME.py as a module: the CI-size tests run the full-size benches' code."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
