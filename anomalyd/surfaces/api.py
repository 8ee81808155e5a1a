"""The operators' read API (/api/alerts, /api/breakers, /api/rules) and
their one write: POST /api/actions, which produces an operator action to
its topic (the engine applies it in event time, like any input).

The HTTP server runs in its own thread; the engines belong to the event
loop. Every view is therefore computed on the loop (run_coroutine_threadsafe)
and handed back as plain values, never read across threads."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from ..engine.actions import decode_action_obj
from ..engine.decode import Rejected
from ..engine.lifecycle import _num
from ..engine.timeutil import format_ts

log = logging.getLogger("anomalyd.operator")
WAIT_S = 5.0  # a view or a send that the loop does not answer in this long is a 503


def read_token(path: Path | None) -> str | None:
    """The console token from its file (a trailing newline is not part of it)."""
    if path is None:
        return None
    token = path.read_text(encoding="utf-8").rstrip("\r\n")
    if not token.strip():
        raise ValueError(f"{path}: the console token file is empty")
    return token


def _ts(ms: float) -> str | None:
    return format_ts(int(ms)) if ms is not None and 0 <= ms < 2**62 else None


def alerts_view(engines: list) -> list[dict]:
    """Firing alerts (every engine: one, or a worker's shards)."""
    out = []
    for eng in engines:
        now = eng.clock.now
        for rid, r in eng.runners.items():
            life = r.life
            for key, a in life.active.items():
                group = life.group_of(key)
                breaker = None
                if life.breaker is not None:
                    skey, _ = life.scope_of(key)
                    breaker = breaker_state(life, skey, now)
                out.append(
                    {
                        "rule_id": rid,
                        "alert_id": a.alert_id,
                        "severity": r.rule.severity,
                        "mode": r.rule.mode,
                        "group": group,
                        "value": _num(a.value),  # JSON numbers (NaN would break JSON.parse)
                        "threshold": _num(a.threshold),
                        "started_at": _ts(a.started),
                        "age_s": max(0, now - a.started) // 1000,
                        "breaker": breaker,
                        "ack": a.ack,
                    }
                )
    return sorted(out, key=lambda x: (x["started_at"] or "", x["rule_id"], json.dumps(x["group"], default=str)))


def breaker_state(life: Any, skey: str, now: int) -> dict | None:
    s = life.scopes.get(skey)
    h = life.holds.get(skey)
    if h is not None:
        state = "held open" if h.kind == "hold_open" else "held closed"
    elif s is None:
        return None
    elif s.closed:
        state = "closed by operator"
    elif s.expires > now:
        state = "open"
    else:
        state = "lapsed"
    return {
        "scope_key": skey,
        "state": state,
        "expires_at": _ts(s.expires) if s is not None and state in ("open", "held open") else None,
        "hold": h.record() if h is not None else None,
    }


def breakers_view(engines: list) -> list[dict]:
    """Open and held breakers, one entry per (rule, scope) and engine."""
    out = []
    for eng in engines:
        now = eng.clock.now
        for rid, r in eng.runners.items():
            life = r.life
            if life.breaker is None:
                continue
            for skey in sorted(set(life.scopes) | set(life.holds)):
                st = breaker_state(life, skey, now)
                if st is None or st["state"] not in ("open", "held open", "held closed"):
                    continue
                s = life.scopes.get(skey)
                h = life.holds.get(skey)
                scope = h.scope if h is not None else life.scope_of(next(iter(s.groups)))[1] if s.groups else None
                out.append(
                    {
                        "rule_id": rid,
                        "breaker": life.breaker.action,
                        "scope": scope if scope is not None else _parse_scope(skey),
                        "scope_key": skey,
                        "state": st["state"],
                        "opened": _ts(s.opened) if s is not None and not s.closed else None,
                        "expires": st["expires_at"],
                        "firing_groups": len(s.groups) if s is not None else 0,
                        "hold": st["hold"],
                    }
                )
    return sorted(out, key=lambda x: (x["rule_id"], x["scope_key"]))


def _parse_scope(skey: str) -> dict:
    return dict(part.split("=", 1) for part in skey.split(","))


def rules_view(engines: list) -> list[dict]:
    rules: dict[str, dict] = {}
    for eng in engines:
        for rid, r in eng.runners.items():
            v = rules.setdefault(
                rid,
                {
                    "rule_id": rid,
                    "type": r.rule.type,
                    "mode": r.rule.mode,
                    "severity": r.rule.severity,
                    "breaker": r.life.breaker.action if r.life.breaker is not None else None,
                    "groups": 0,
                    "firing": 0,
                    "last_fired": None,
                },
            )
            v["groups"] += r.groups()
            v["firing"] += len(r.life.active)
            last = _ts(r.life.last_fired) if r.life.last_fired >= 0 else None
            if last is not None and (v["last_fired"] is None or last > v["last_fired"]):
                v["last_fired"] = last
    return [rules[k] for k in sorted(rules)]


class OperatorApi:
    """What /api/* and /console answer, for one runtime."""

    def __init__(
        self,
        engines: Callable[[], list],
        send: Callable[[str, bytes, bytes], Any],
        loop: asyncio.AbstractEventLoop,
        actions_topic: str,
        token: str | None,
        clock: Callable[[], float] = time.time,
    ):
        self.engines, self.send, self.loop = engines, send, loop
        self.actions_topic = actions_topic
        self.token = token
        self.clock = clock

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        async def call():
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(WAIT_S)

    def get(self, path: str) -> tuple[int, dict | list]:
        views = {"/api/alerts": alerts_view, "/api/breakers": breakers_view, "/api/rules": rules_view}
        if path == "/api/whoami":
            return 200, {"actions": self.token is not None}
        view = views.get(path)
        if view is None:
            return 404, {"error": f"no such API: {path} (/api/alerts, /api/breakers, /api/rules, POST /api/actions)"}
        try:
            return 200, self._on_loop(lambda: view(self.engines()))
        except Exception as exc:  # the loop is busy or stopping
            return 503, {"error": f"the service did not answer: {exc!r}"}

    def post(self, path: str, headers: Any, body: bytes) -> tuple[int, dict]:
        if path != "/api/actions":
            return 404, {"error": f"no such API: POST {path} (POST /api/actions)"}
        if self.token is None:
            return 403, {"error": "read-only: no console token is configured (ANOMALYD_CONSOLE_TOKEN_FILE)"}
        auth = headers.get("Authorization") or ""
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return 401, {"error": "an action needs the console token: Authorization: Bearer TOKEN"}
        if (headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return 415, {"error": "Content-Type must be application/json"}
        try:
            obj = json.loads(body)
        except ValueError as exc:
            return 400, {"error": f"invalid JSON: {exc}"}
        if isinstance(obj, dict):
            obj.setdefault("ts", int(self.clock() * 1000))  # event time of the action: now
        try:
            act = decode_action_obj(obj)
        except Rejected as exc:
            return 400, {"error": exc.reason, "reason_code": exc.code}
        value = act.model_dump_json(exclude_none=True).encode()
        try:
            self._send(act.rule_id.encode(), value)
        except Exception as exc:
            return 503, {"error": f"the action was not produced: {exc!r}"}
        log.warning(
            "operator action %s by %s on %s %s: %s",
            act.action,
            act.by,
            act.rule_id,
            json.dumps(act.scope),
            act.reason or "(no reason)",
        )
        return 202, {"accepted": json.loads(value), "topic": self.actions_topic}

    def _send(self, key: bytes, value: bytes) -> None:
        async def go():
            fut = await self.send(self.actions_topic, key, value)
            await fut  # acknowledged by the broker

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(WAIT_S)


CONSOLE = Path(__file__).with_name("console.html")
