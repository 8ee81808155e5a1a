"""Engine benchmarks: replay throughput against json.loads, and state memory per group.

    python bench/bench_engine.py [--events 200000] [--groups 1000000]

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


def best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_replay(n_events: int) -> dict:
    path = ROOT / "bench" / "out" / f"sim-{n_events}.jsonl"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        with open(path, "w") as f:
            for env in generate(seed=11, events=n_events):
                f.write(json.dumps(env, separators=(",", ":")) + "\n")
    lines = path.read_bytes().splitlines()
    rules = load_rules(ROOT / "rules")
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

    t_json = best_of(3, loads)
    t_replay = best_of(3, replay)
    # The CLI end to end, process start-up included.
    import subprocess

    def cli(p: Path) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "anomalyd", "replay", str(p), "--rules", str(ROOT / "rules")],
                       stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--groups", type=int, default=1_000_000)
    a = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    r = bench_replay(a.events)
    print(f"replay, default rules, {r['events']} simulated events ({r['outputs']} output records):")
    print(f"  json.loads alone       {r['json_loads_per_s']:>12,.0f} lines/s")
    print(f"  engine (replay path)   {r['replay_per_s']:>12,.0f} events/s   = {r['ratio_to_json_loads']:.2f} x json.loads")
    print(f"  `anomalyd replay` CLI  {r['cli_per_s']:>12,.0f} events/s   (wall clock: start-up, reading and output included)")
    print(f"    of which start-up    {r['cli_start_s']:>12.2f} s          (same command on an empty file)")
    print(f"    after start-up       {r['cli_after_start_per_s']:>12,.0f} events/s")
    m = bench_memory(a.groups)
    print(f"state memory, order-price-swing, {m['groups']:,} distinct SKUs:")
    print(f"  {m['bytes_per_group_tracemalloc']:.0f} bytes/group (tracemalloc), {m['rss_growth_per_group']:.0f} bytes/group (RSS growth)")


if __name__ == "__main__":
    main()
