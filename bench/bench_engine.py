"""Engine benchmarks: replay throughput against json.loads, and state memory per group.

    python bench/bench_engine.py [--events 200000] [--groups 1000000] [--against REV]

--against REV also runs the replay of git revision REV (its code and its
rules/) on the same file in the same run, alternating, and prints both.

Prints figures; results are recorded in bench/README.md. Throughput is
measured in-process on one core, running exactly what `anomalyd replay` runs
(Engine.process_line plus writing the output lines).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.cli.replay import write_outputs  # noqa: E402
from anomalyd.engine.engine import Engine  # noqa: E402
from anomalyd.engine.rules.loader import load_rules  # noqa: E402
from anomalyd.engine.types import EngineConfig  # noqa: E402
from anomalyd.simulate import generate  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def best_of(n: int, *fns) -> list[float]:
    """The best time of each function over n rounds, the functions taking
    turns within a round: on a shared machine, load that comes and goes
    then weighs on each alike."""
    best = [float("inf")] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


# The simulator's default rate (20 events/s) gives about 100 output records per
# 200,000 events; at 4/s the same count spans 14 hours, and the anomalies of
# every hour give about 800 (a file heavy with alerts).
ALERT_HEAVY_RATE = 4.0


def bench_replay(n_events: int, rules_dir: Path | None = None, rate: float = 20.0) -> dict:
    name = f"sim-{n_events}.jsonl" if rate == 20.0 else f"sim-{n_events}-rate{rate:g}.jsonl"
    path = ROOT / "bench" / "out" / name
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        with open(path, "w") as f:
            for env in generate(seed=11, events=n_events, rate=rate):
                f.write(json.dumps(env, separators=(",", ":")) + "\n")
    lines = path.read_bytes().splitlines()
    rules = load_rules(rules_dir or ROOT / "rules")
    from anomalyd.engine import tune_gc

    tune_gc()  # as `anomalyd replay` does

    def loads():
        for ln in lines:
            json.loads(ln)

    outputs = []

    def replay():
        eng = Engine(rules, EngineConfig())
        sink = io.StringIO()
        process = eng.process_line
        for ln in lines:
            o = process(ln)
            if o:
                write_outputs(o, sink)
        outputs.append(sink.getvalue().count("\n"))

    t_json, t_replay = best_of(5, loads, replay)
    # The CLI end to end, process start-up included.
    import subprocess

    def cli(p: Path) -> float:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "anomalyd", "replay", str(p), "--rules", str(ROOT / "rules")],
            stdout=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
        )
        return time.perf_counter() - t

    empty = path.parent / "empty.jsonl"
    empty.write_text("")
    t_start = min(cli(empty) for _ in range(3))  # interpreter, imports, rules
    t_cli = min(cli(path) for _ in range(3))
    n = len(lines)
    return {
        "events": n,
        "json_loads_per_s": n / t_json,
        "replay_per_s": n / t_replay,
        "ratio_to_json_loads": t_json / t_replay,
        "cli_per_s": n / t_cli,
        "cli_start_s": t_start,
        "cli_after_start_per_s": n / (t_cli - t_start),
        "outputs": outputs[-1],
    }


def bench_memory(n_groups: int) -> dict:
    rules = [lr.rule for lr in load_rules(ROOT / "rules").rules if lr.rule.id == "order-price-swing"]
    eng = Engine(rules, EngineConfig(max_groups_per_rule=n_groups * 2))
    t0 = 1_781_712_000_000
    tmpl = '{"topic":"orders","value":{"event_id":"ord-%08d","ts":%d,"order_id":"O-%08d","sku":"SKU-%08d","quantity":1,"unit_price":%d.5,"status":"paid"}}'
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rss0 = rss_kib()
    for i in range(n_groups):
        eng.process_line(tmpl % (i, t0 + i, i, i, 100 + i % 50))
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    groups = eng.groups()["order-price-swing"]
    return {
        "groups": groups,
        "bytes_per_group_tracemalloc": used / groups,
        "rss_growth_per_group": (rss_kib() - rss0) * 1024 / groups,
    }


def bench_against(rev: str, n_events: int, rounds: int = 3, rules: Path | None = None) -> None:
    """This tree's replay beside revision `rev`'s, in one run, alternating
    (each round a fresh process of each), on the same file. `rules`: this
    tree runs these rules instead of its own (the same rules on both codes)."""
    import subprocess
    import tempfile

    bench_replay(n_events)  # writes the file both read
    old = Path(tempfile.mkdtemp(prefix="bench-against-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), rev], check=True, capture_output=True
    )
    code = (
        "import json,sys; sys.path.insert(0, sys.argv[1]); sys.argv=[sys.argv[0]];"
        "import importlib.util as u; s=u.spec_from_file_location('b', sys.argv[0] if False else '%s');"
        "m=u.module_from_spec(s); s.loader.exec_module(m); print(json.dumps(m.replay_only(%d, '%s', %r)))"
    )
    try:
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, tree in (("this tree", ROOT), (rev, old)):
                own = str(rules.resolve()) if rules and tree == ROOT else None
                out = subprocess.run(
                    [sys.executable, "-c", code % (ROOT / "bench" / "bench_engine.py", n_events, tree, own), str(tree)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tree,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                best[name] = max(best.get(name, 0), r["replay_per_s"])
                best[name + " json"] = max(best.get(name + " json", 0), r["json_loads_per_s"])
                best[name + " rules"] = r["rules"]
        for name in ("this tree", rev):
            print(
                f"  {name:<12} {best[name]:>10,.0f} events/s  ({best[name + ' rules']} rules; "
                f"{best[name] / best[name + ' json']:.2f} x json.loads)"
            )
        print(f"  ratio: {best['this tree'] / best[rev]:.3f}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)


def replay_only(n_events: int, tree: str, rules: str | None = None) -> dict:
    """bench_replay with the engine and rules of another tree (sys.path set by the caller)."""
    global Engine, EngineConfig, load_rules, write_outputs
    import importlib

    for name in [m for m in sys.modules if m == "anomalyd" or m.startswith("anomalyd.")]:
        del sys.modules[name]
    # This file, loaded from the checkout that runs the bench, put its own
    # root first on sys.path: the tree under test goes before it.
    sys.path.insert(0, tree)
    Engine = importlib.import_module("anomalyd.engine.engine").Engine
    assert Path(sys.modules["anomalyd"].__file__ or "").is_relative_to(tree), "imported the wrong tree"
    EngineConfig = importlib.import_module("anomalyd.engine.types").EngineConfig
    load_rules = importlib.import_module("anomalyd.engine.rules.loader").load_rules
    write_outputs = importlib.import_module("anomalyd.cli.replay").write_outputs
    d = Path(rules) if rules else Path(tree) / "rules"
    r = bench_replay(n_events, d)
    r["rules"] = len(load_rules(d).rules)
    return r


def bench_state() -> None:
    """Bytes per group of the second edition's windowed state."""
    from anomalyd.engine.rules.model import RuleBase  # noqa: F401  (the registry below)
    from anomalyd.engine.types import RULE_TYPES

    t0 = 1_781_712_000_000
    cases = {
        "surge offset 7d, window 10m (count)": dict(
            type="surge", source="complaints", window="10m", pct=50, baseline="offset", offset="7d", group_by=["sku"]
        ),
        "aggregate sum, window 10m": dict(
            type="aggregate", source="complaints", fn="sum", field="ts", window="10m", op=">", value=0, group_by=["sku"]
        ),
        "aggregate distinct, window 10m, 1,000 values": dict(
            type="aggregate",
            source="complaints",
            fn="distinct",
            field="ticket_id",
            window="10m",
            op=">",
            value=1e9,
            group_by=["sku"],
        ),
    }
    for name, kw in cases.items():
        r = RULE_TYPES[kw["type"]].model_validate({"id": "b", **kw})
        eng = Engine([r], EngineConfig(max_groups_per_rule=10**6))
        groups = 200 if "distinct" in name else 2000
        per = 1000 if "distinct" in name else 10
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(per):
            for g in range(groups):
                eng.process_line(
                    '{"topic":"complaints","value":{"event_id":"e%d-%d","ts":%d,"ticket_id":"T-%d",'
                    '"category":"q","sku":"S-%d"}}' % (g, i, t0 + i * 500, i, g)
                )
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        print(f"  {name:<46} {used / groups:>10,.0f} bytes/group ({groups} groups, {per} events each)")


def bench_open(n_open: int) -> None:
    """Bytes per open expectation of a sequence rule (unpaid orders): n_open
    orders created within its `within`, none paid yet."""
    from anomalyd.engine.types import RULE_TYPES

    r = RULE_TYPES["sequence"].model_validate(
        {
            "id": "unpaid",
            "type": "sequence",
            "within": "1h",
            "window": "10m",
            "op": ">=",
            "value": 20,
            "group_by": ["sku"],
            "first": {
                "source": "orders",
                "key": "order_id",
                "where": [{"field": "status", "op": "==", "value": "created"}],
            },
            "then": {"source": "payments", "key": "order_id"},
        }
    )
    eng = Engine([r], EngineConfig(max_groups_per_rule=n_open * 2))
    t0 = 1_781_712_000_000
    tmpl = (
        '{"topic":"orders","value":{"event_id":"ord-%08d","ts":%d,"order_id":"O-%08d","sku":"SKU-%05d",'
        '"quantity":1,"unit_price":9.5,"status":"created"}}'
    )
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = time.perf_counter()
    for i in range(n_open):
        eng.process_line(tmpl % (i, t0 + i * 3, i, i % 1000))  # 1M orders in 50 minutes, 1,000 SKUs
    took = time.perf_counter() - t
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    n = len(eng.runners["unpaid"].open)
    print(
        f"  sequence, {n:,} open expectations       {used / n:>10,.0f} bytes each (key, first ts and id, group, deadline timer);"
        f" {n_open / took:,.0f} first events/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=1_000_000)
    ap.add_argument("--against", metavar="REV", help="also replay git revision REV's code and rules, in the same run")
    ap.add_argument("--rules", type=Path, help="with --against: the rules this tree runs (default: its own rules/)")
    ap.add_argument(
        "--open", type=int, default=1_000_000, help="open expectations of a sequence rule for its memory figure"
    )
    a = ap.parse_args()
    if a.against:
        print(f"replay, {a.events} simulated events, this tree against {a.against} (best of 3 alternating runs):")
        bench_against(a.against, a.events, rules=a.rules)
        print("state per group (tracemalloc):")
        bench_state()
        bench_open(a.open)
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    for rate, what in ((20.0, ""), (ALERT_HEAVY_RATE, ", heavy with alerts")):
        r = bench_replay(a.events, rate=rate)
        print(f"replay, default rules, {r['events']} simulated events{what} ({r['outputs']} output records):")
        print(f"  json.loads alone       {r['json_loads_per_s']:>12,.0f} lines/s")
        print(
            f"  engine (replay path)   {r['replay_per_s']:>12,.0f} events/s   = {r['ratio_to_json_loads']:.2f} x json.loads"
        )
        print(
            f"  `anomalyd replay` CLI  {r['cli_per_s']:>12,.0f} events/s   (wall clock: start-up, reading and output included)"
        )
        print(f"    of which start-up    {r['cli_start_s']:>12.2f} s          (same command on an empty file)")
        print(f"    after start-up       {r['cli_after_start_per_s']:>12,.0f} events/s")
    m = bench_memory(a.groups)
    print(f"state memory, order-price-swing, {m['groups']:,} distinct SKUs:")
    print(
        f"  {m['bytes_per_group_tracemalloc']:.0f} bytes/group (tracemalloc), {m['rss_growth_per_group']:.0f} bytes/group (RSS growth)"
    )


if __name__ == "__main__":
    main()
