"""`anomalyd breakers list | close | hold | release` and `anomalyd alerts
list | ack`: read through the service's API (every worker's, merged), act
by POSTing an operator action to it (surfaces/api.py)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .common import load_settings


def add_parsers(sub: Any) -> dict[str, argparse.ArgumentParser]:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--api",
            metavar="URL",
            action="append",
            help="the service's HTTP address, repeatable (scale-out: every worker; lists merge them); "
            "default http://ANOMALYD_METRICS_HOST:ANOMALYD_METRICS_PORT",
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    def acting(p: argparse.ArgumentParser, reason_required: bool) -> None:
        p.add_argument("rule_id", metavar="RULE")
        p.add_argument("scope", metavar="FIELD=VALUE[,FIELD=VALUE]", nargs="?" if not reason_required else None)
        p.add_argument("--by", default=None, help="who acts (default: your user name)")
        p.add_argument("--reason", required=reason_required, help="why" + (" (required)" if reason_required else ""))
        p.add_argument("--token-file", metavar="FILE", help="the console token (default ANOMALYD_CONSOLE_TOKEN_FILE)")

    b = sub.add_parser("breakers", help="open and held breakers; close, hold or release one")
    bsub = b.add_subparsers(dest="breakers_cmd", metavar="COMMAND")
    common(bsub.add_parser("list", help="open and held breakers (every --api merged)"))
    c = bsub.add_parser("close", help="close a breaker now (it reopens only for a new episode)")
    h = bsub.add_parser("hold", help="hold a breaker closed (or --open) until a time")
    r = bsub.add_parser("release", help="end a hold")
    for p, need in ((c, True), (h, True), (r, False)):
        common(p)
        acting(p, need)
    kind = h.add_mutually_exclusive_group()
    kind.add_argument("--closed", action="store_true", help="closed, whatever the alerts do (the default)")
    kind.add_argument("--open", action="store_true", help="open, whatever the alerts do")
    end = h.add_mutually_exclusive_group(required=True)
    end.add_argument("--for", dest="for_", metavar="DURATION", help="e.g. 1h, 30m")
    end.add_argument("--until", metavar="TIME", help="RFC 3339 or epoch ms")

    a = sub.add_parser("alerts", help="firing alerts; acknowledge one")
    asub = a.add_subparsers(dest="alerts_cmd", metavar="COMMAND")
    common(asub.add_parser("list", help="firing alerts (every --api merged)"))
    ack = asub.add_parser("ack", help="acknowledge the firing alerts of a rule (and group)")
    common(ack)
    acting(ack, False)
    return {"breakers": b, "alerts": a}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, token: str | None, body: dict) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def parse_scope(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"scope takes FIELD=VALUE[,FIELD=VALUE], got {text!r}")
        out[k.strip()] = v.strip()
    return out


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    def show(v: Any) -> str:
        if isinstance(v, dict):
            return ",".join(f"{k}={x}" for k, x in v.items()) if "by" not in v else f"{v['by']}"
        return "" if v is None else str(v)

    cells = [[h for h, _ in cols]] + [[show(r.get(k)) for _, k in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


BREAKER_COLS = [
    ("RULE", "rule_id"),
    ("BREAKER", "breaker"),
    ("SCOPE", "scope"),
    ("STATE", "state"),
    ("OPENED", "opened"),
    ("EXPIRES", "expires"),
    ("HOLD BY", "hold"),
]
ALERT_COLS = [
    ("RULE", "rule_id"),
    ("SEV", "severity"),
    ("GROUP", "group"),
    ("VALUE", "value"),
    ("AGE", "age"),
    ("BREAKER", "breaker_state"),
    ("ACK BY", "ack"),
]


def run(a: argparse.Namespace, parsers: dict[str, argparse.ArgumentParser]) -> int:
    cmd = a.cmd
    what = a.breakers_cmd if cmd == "breakers" else a.alerts_cmd
    if what is None:
        parsers[cmd].print_help(sys.stderr)
        return 2
    s = load_settings(f"{cmd} {what}")
    if s is None:
        return 2
    apis = [u.rstrip("/") for u in (a.api or [f"http://{s.metrics_host}:{s.metrics_port}"])]
    try:
        if what == "list":
            return _list(cmd, apis, a.json)
        return _act(cmd, what, a, apis[0], s)
    except (urllib.error.URLError, OSError) as exc:
        print(f"anomalyd {cmd} {what}: the service does not answer at {apis}: {exc}", file=sys.stderr)
        return 1


def _list(cmd: str, apis: list[str], as_json: bool) -> int:
    rows: list[dict] = []
    for api in apis:
        rows.extend(_get(f"{api}/api/{cmd}"))
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    if cmd == "alerts":
        for r in rows:
            r["age"] = f"{r['age_s'] // 60}m" if r["age_s"] >= 120 else f"{r['age_s']}s"
            r["breaker_state"] = (r.get("breaker") or {}).get("state")
    print(_table(rows, BREAKER_COLS if cmd == "breakers" else ALERT_COLS))
    return 0


def _act(cmd: str, what: str, a: argparse.Namespace, api: str, s: Any) -> int:
    from ..engine.timeutil import parse_duration, parse_ts

    try:
        scope = parse_scope(a.scope)
    except ValueError as exc:
        print(f"anomalyd {cmd} {what}: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"rule_id": a.rule_id, "scope": scope, "by": a.by or getpass.getuser()}
    if a.reason:
        body["reason"] = a.reason
    now = int(time.time() * 1000)
    if what == "hold":
        body["action"] = "hold_open" if a.open else "hold_closed"
        try:
            until = a.until
            body["until"] = (
                now + parse_duration(a.for_) if a.for_ else parse_ts(int(until) if until.isdigit() else until)
            )
        except ValueError as exc:
            print(f"anomalyd {cmd} {what}: {exc}", file=sys.stderr)
            return 2
    else:
        body["action"] = what
    body["ts"] = now
    token_file = a.token_file or s.console_token_file
    token = None
    if token_file:
        from ..surfaces.api import read_token

        try:
            token = read_token(Path(token_file))
        except (OSError, ValueError) as exc:
            print(f"anomalyd {cmd} {what}: token file: {exc}", file=sys.stderr)
            return 2
    code, reply = _post(f"{api}/api/actions", token, body)
    if code != 202:
        print(f"anomalyd {cmd} {what}: refused ({code}): {reply.get('error', reply)}", file=sys.stderr)
        return 1
    print(f"{what}: {json.dumps(reply['accepted'])} -> {reply['topic']}")
    return 0
