"""Key flood, full size: millions of distinct SKUs through every rule type
(threshold, change, surge, ratio, count, absence), the engine as `anomalyd
replay` runs it (`Engine.process_line` per JSON line).

    python bench/bench_flood.py [--keys 10000000] [--span 1000] [--cap 500000]

The rules and the real groups are those of tests/fuzz/test_key_flood.py
(the CI size), stretched over --span seconds of event time so that the
windowed rules and the absence rule see whole windows come and go during the
flood:

- FLOOD-<i>: one inventory event each (available 10), --keys of them, evenly
  spread over the span. Generated lazily: nothing holds the flood.
- REAL-NEG: every 1,000 flood events, available -5 / -50 alternately
  (fires threshold, change, ratio, count).
- REAL-SURGE: one event every 20 s of event time in the first half, every
  5 s in the second (fires surge).
- REAL-QUIET: one event every 10 s until the middle of the span, then silent
  while the flood keeps the clock moving (fires absence).

Every --every events one row: events, groups live per rule (the largest must
stay <= cap), RSS, the engine's pending timer entries and active alerts (both
outside the per-rule cap). At the end: records tried, crashes (exceptions out
of process_line), events processed, peak RSS (VmHWM), groups vs cap and
evictions per rule, alerts by rule (real groups vs flood groups), whether
the real groups' alerts fired, wall time and events/s. Exit 1 on FAIL.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.engine.engine import Engine  # noqa: E402
from anomalyd.engine.types import EngineConfig  # noqa: E402
from tests.fuzz.test_key_flood import RULES  # noqa: E402  (the CI-size flood's six rules)
from tests.helpers import T0  # noqa: E402

EXPECTED = {"REAL-NEG": {"t", "c", "r", "n"}, "REAL-SURGE": {"s"}, "REAL-QUIET": {"a"}}


def proc_status() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    vals = {}
    for ln in Path("/proc/self/status").read_text().splitlines():
        if ln.startswith(("VmRSS:", "VmHWM:")):
            k, v = ln.split(":", 1)
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def inv(eid: str, ts: int, sku: str, available: int) -> str:
    return json.dumps({"topic": "inventory", "value": {"event_id": eid, "ts": ts, "sku": sku, "available": available}})


def stream(keys: int, span_ms: int):
    """Yield (line, is_real) in event-time order, lazily."""
    half = T0 + span_ms // 2
    next_surge, next_quiet = T0, T0
    for i in range(keys):
        ts = T0 + i * span_ms // keys
        while next_surge <= ts:
            yield inv(f"s{next_surge}", next_surge, "REAL-SURGE", 100), True
            next_surge += 20_000 if next_surge < half else 5_000
        while next_quiet <= ts and next_quiet < half:
            yield inv(f"q{next_quiet}", next_quiet, "REAL-QUIET", 100), True
            next_quiet += 10_000
        yield inv(f"e{i}", ts, f"FLOOD-{i}", 10), False
        if i % 1000 == 0:
            yield inv(f"r{i}", ts, "REAL-NEG", -5 if i % 2000 else -50), True


def timer_entries(eng: Engine) -> int:
    return sum(len(s) for r in eng.runners.values() for s in (*r.timers.due.values(), *r.life.timers.due.values()))


def active_alerts(eng: Engine) -> int:
    return sum(len(r.life.active) for r in eng.runners.values())


def git_commit() -> str:
    try:
        c = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "anomalyd"], capture_output=True, text=True
        ).stdout.strip()
        return (c or "? (not a git checkout)") + (" (anomalyd/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=10_000_000, help="distinct flood SKUs (one event each)")
    ap.add_argument("--span", type=float, default=1000, help="seconds of event time the flood covers")
    ap.add_argument("--cap", type=int, default=500_000, help="max groups per rule (the service default: 500000)")
    ap.add_argument("--every", type=int, default=1_000_000, help="events between progress rows")
    ap.add_argument("--max-rss-mb", type=float, default=12_000, help="stop (FAIL) if RSS passes this")
    a = ap.parse_args()
    span_ms = int(a.span * 1000)
    print(
        f"bench_flood: {a.keys:,} distinct SKUs over {a.span:g} s of event time ({a.keys / a.span:,.0f} keys/s), "
        f"max_groups_per_rule {a.cap:,}, rules {', '.join(f'{r.id}={r.type}' for r in RULES)}"
    )
    print(
        f"commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {os.cpu_count()} cores, Python "
        f"{platform.python_version()} ({platform.machine()}), load average {os.getloadavg()[0]:.2f} "
        f"(shared machine: other jobs may run)",
        flush=True,
    )
    eng = Engine(RULES, EngineConfig(max_groups_per_rule=a.cap))
    rss0, _ = proc_status()
    tried = crashes = 0
    first_crash = None
    fired: dict[str, set[str]] = {k: set() for k in EXPECTED}
    by_rule: dict[tuple[str, str, str], int] = {}  # (rule, real|flood, status) -> n
    max_groups = {r.id: 0 for r in RULES}
    max_firing = {r.id: 0 for r in RULES}
    rss_rows: list[float] = []
    aborted = None
    print(
        f"{'events':>11} {'wall s':>7} {'ev/s':>7} {'rss MB':>7} {'max groups':>10} {'timer keys':>10} "
        f"{'firing':>9} {'evicted (sum)':>13} {'alerts evicted':>14}",
        flush=True,
    )
    t0 = time.perf_counter()
    t_prev, n_prev = t0, 0
    for line, _real in stream(a.keys, span_ms):
        tried += 1
        try:
            out = eng.process_line(line)
        except Exception as e:  # a crash is a finding: count it, keep going
            crashes += 1
            first_crash = first_crash or f"{type(e).__name__}: {e} on {line[:200]}"
            continue
        for topic, _k, v in out:
            if topic == "alerts":
                sku = v["group"].get("sku", "")
                kind = "real" if sku.startswith("REAL-") else "flood"
                key = (v["rule_id"], kind, v["status"])
                by_rule[key] = by_rule.get(key, 0) + 1
                if kind == "real" and v["status"] == "firing" and sku in fired:
                    fired[sku].add(v["rule_id"])
        if tried % 100_000 == 0:
            for rid, n in eng.groups().items():
                if n > max_groups[rid]:
                    max_groups[rid] = n
            for rid, r in eng.runners.items():
                max_firing[rid] = max(max_firing[rid], len(r.life.active))
        if tried % a.every == 0:
            now = time.perf_counter()
            rss, _ = proc_status()
            rss_rows.append(rss)
            print(
                f"{tried:>11,} {now - t0:>7.0f} {(tried - n_prev) / (now - t_prev):>7,.0f} {rss:>7,.0f} "
                f"{max(eng.groups().values()):>10,} {timer_entries(eng):>10,} {active_alerts(eng):>9,} "
                f"{sum(eng.evictions().values()):>13,} {eng.summary()['alerts_evicted']:>14,}",
                flush=True,
            )
            t_prev, n_prev = now, tried
            if rss > a.max_rss_mb:
                aborted = f"RSS {rss:,.0f} MB passed --max-rss-mb {a.max_rss_mb:,.0f}"
                break
    wall = time.perf_counter() - t0
    for rid, n in eng.groups().items():
        max_groups[rid] = max(max_groups[rid], n)
    rss, hwm = proc_status()
    processed = sum(eng.consumed.values()) + sum(eng.invalid.values())
    groups, evicted = eng.groups(), eng.evictions()
    print("\n== summary ==")
    print(f"  records tried       {tried:,} ({a.keys:,} flood + {tried - a.keys:,} real-group events)")
    print(f"  crashes             {crashes}" + (f"  first: {first_crash}" if first_crash else ""))
    print(
        f"  events processed    {processed:,} (consumed {sum(eng.consumed.values()):,}, late {eng.late:,}, "
        f"dead letters {sum(eng.invalid.values()):,})"
    )
    print(f"  RSS                 before {rss0:,.0f} MB, at the end {rss:,.0f} MB, peak (VmHWM) {hwm:,.0f} MB")
    print(f"  pending timer keys  {timer_entries(eng):,} (bounded by the key rate times ~2 windows, not by the cap)")
    print(
        f"  firing alerts       {active_alerts(eng):,} now, at most {max(max_firing.values()):,} for one rule; "
        f"{eng.summary()['alerts_evicted']:,} forgotten over the cap"
    )
    drift = None
    if len(rss_rows) >= 3:  # from the second row on, every rule's state is at the cap
        drift = (rss_rows[-1] - rss_rows[1]) / rss_rows[1]
        print(
            f"  RSS drift           {rss_rows[1]:,.0f} MB at row 2 -> {rss_rows[-1]:,.0f} MB at the last row "
            f"({drift:+.1%})"
        )
    print(f"  wall time           {wall:,.1f} s, {tried / wall:,.0f} events/s")
    print(
        f"  {'rule':<14} {'groups now':>10} {'max seen':>10} {'cap':>9} {'evicted':>11} {'max firing':>10} "
        f"{'alerts real':>12} {'alerts flood':>13}"
    )
    cap_ok = True
    for r in RULES:
        rid = r.id
        real = sum(n for (ri, k, _s), n in by_rule.items() if ri == rid and k == "real")
        flood = sum(n for (ri, k, _s), n in by_rule.items() if ri == rid and k == "flood")
        cap_ok &= max_groups[rid] <= a.cap
        print(
            f"  {rid + ' (' + r.type + ')':<14} {groups[rid]:>10,} {max_groups[rid]:>10,} {a.cap:>9,} "
            f"{evicted[rid]:>11,} {max_firing[rid]:>10,} {real:>12,} {flood:>13,}"
        )
    checks = [
        ("no crash", crashes == 0),
        ("every record processed", processed == tried),
        ("groups <= cap for every rule at every check", cap_ok),
        ("firing alerts <= cap for every rule at every check", all(n <= a.cap for n in max_firing.values())),
        *([("RSS flat once the state is at the cap (drift < 10%)", drift < 0.10)] if drift is not None else []),
        (
            "evictions counted (>= keys - cap for the windowed rules)",
            all(evicted[r.id] >= a.keys - a.cap for r in RULES if r.type != "threshold"),
        ),
        *[(f"{sku} fired {', '.join(sorted(want))}", want <= fired[sku]) for sku, want in EXPECTED.items()],
    ]
    if aborted:
        checks.append((aborted, False))
    for what, ok in checks:
        print(
            f"  {'OK  ' if ok else 'FAIL'} {what}"
            + ("" if ok or "fired" not in what else f" (fired: {sorted(fired[what.split()[0]])})")
        )
    ok = all(ok for _, ok in checks)
    print("OK" if ok else "FAIL", flush=True)
    gc.collect()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
