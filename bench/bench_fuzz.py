"""Event fuzzing at full size: hostile records (tests/fuzz/hostile.py) through
the engine as the worker calls it, then through `anomalyd run` on Kafka.

    python bench/bench_fuzz.py [--records 1000000] [--kafka-records 100000] [--seed 7]

1. Engine: `Engine.process_record` per record (decode, dead-letter or
   evaluate; what the worker does after reading a record), default rules,
   records in generation order. Counted: records tried, crashes (exceptions
   out of the engine), accepted (consumed, late included), dead letters by
   reason; checked: tried = accepted + dead letters, every output valid JSON,
   every dead letter with a one-line reason. Peak RSS.
2. Worker: an embedded broker and `anomalyd run` (a subprocess, as
   tests/io/service.py runs it); the first --kafka-records records (without
   the multi-megabyte ones, which Kafka's default 1 MB limit refuses at the
   producer) produced to the four input topics. Checked: the service
   processes every record (accepted + dead-lettered = produced), the
   dead-letter topic holds exactly one record per refusal, the refusals
   match the engine run's record for record, the service is healthy and its log holds no traceback.
   Events far in the past are accepted as late (not refused) whatever the
   order they are read in; future_ts is decided against the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomalyd.engine.engine import Engine  # noqa: E402
from anomalyd.engine.rules.loader import load_rules  # noqa: E402
from bench.bench_flood import proc_status as rss_mb  # noqa: E402  (VmRSS, VmHWM) in MB
from tests.fuzz.hostile import hostile_records  # noqa: E402


def engine_run(records: int, seed: int, big: bool, every: int) -> dict:
    eng = Engine(load_rules(ROOT / "rules"))
    tried = crashes = outputs = bad_outputs = 0
    first_crash = None
    kinds: Counter[str] = Counter()
    refused: dict[int, str] = {}  # record index -> reason code
    t0 = time.perf_counter()
    for i, (source, raw, kind) in enumerate(hostile_records(records, seed=seed, big=big)):
        tried += 1
        kinds[kind] += 1
        try:
            outs = eng.process_record(source, raw, partition=0, offset=i)
        except Exception as e:  # a crash is the finding: count it, go on
            crashes += 1
            first_crash = first_crash or f"{type(e).__name__}: {e} ({kind})"
            continue
        for topic, _key, value in outs:
            outputs += 1
            try:
                json.dumps(value, allow_nan=False)
                if topic == "dead-letter":
                    if not value["reason"] or "\n" in value["reason"] or not value["reason_code"]:
                        bad_outputs += 1
                    refused[i] = value["reason_code"]
            except (ValueError, KeyError, TypeError):
                bad_outputs += 1
        if every and tried % every == 0:
            print(f"  {tried:>11,} records, {time.perf_counter() - t0:6.0f} s, RSS {rss_mb()[0]:,.0f} MB", flush=True)
    wall = time.perf_counter() - t0
    accepted, invalid = sum(eng.consumed.values()), sum(eng.invalid.values())
    return dict(
        tried=tried,
        crashes=crashes,
        first_crash=first_crash,
        accepted=accepted,
        late=eng.late,
        invalid=invalid,
        by_reason=dict(eng.invalid),
        kinds=dict(kinds),
        outputs=outputs,
        bad_outputs=bad_outputs,
        refused=refused,
        wall=wall,
        summary=eng.summary(),
    )


def kafka_run(bootstrap: str, tmp: Path, records: int, seed: int, timeout: float) -> dict:
    """The first `records` Kafka-sized hostile records through `anomalyd run`
    (also tests/io/test_fuzz_worker.py, at CI size)."""
    from anomalyd.kafkatools.admin import produce_jsonl
    from tests.io.service import Service

    recs = list(hostile_records(records, seed=seed, big=False))
    svc = Service(bootstrap, tmp)
    # Keyed by index, so that a dead letter names the record it refuses.
    t = time.perf_counter()
    produce_jsonl(
        bootstrap, [(svc.topics[src], f"rec-{i}", raw) for i, (src, raw, _k) in enumerate(recs)], flush_every=5000
    )
    produce_s = time.perf_counter() - t
    svc.start()
    try:
        svc.wait_ready(timeout=60)
        t = time.perf_counter()
        svc.wait_processed(len(recs), timeout=timeout)
        process_s = time.perf_counter() - t
        healthz = svc.get("/healthz")[0]
        invalid_metric = svc.metric("anomalyd_events_invalid_total")
        consumed_metric = svc.metric("anomalyd_events_consumed_total")
        out = svc.outputs(timeout_s=300)  # stops 1 s after the last record; the bound is for a broken broker
    finally:
        rc = svc.stop()
    log = svc.log()
    refused = {}
    for d in out["dead-letter"]:
        key = d.get("key") or ""
        if key.startswith("rec-"):
            refused[int(key[4:])] = d["reason_code"]
    dead = out["dead-letter"]
    return dict(
        produced=len(recs),
        produce_s=produce_s,
        process_s=process_s,
        healthz=healthz,
        exit_code=rc,
        dead_letters=len(dead),
        reasons_ok=all(d["reason"] and "\n" not in d["reason"] for d in dead),
        invalid_metric=invalid_metric,
        consumed_metric=consumed_metric,
        refused=refused,
        by_reason=dict(Counter(d["reason_code"] for d in dead)),
        alerts=len(out["alerts"]),
        tracebacks=log.count("Traceback"),
        errors=log.count(" ERROR "),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="records through the engine")
    ap.add_argument("--kafka-records", type=int, default=100_000, help="records through the worker (0 = skip)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=600, help="seconds the worker may take")
    a = ap.parse_args()
    print(
        f"bench_fuzz: seed {a.seed}; {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.machine()}); load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    checks: list[tuple[str, bool]] = []

    print(f"\n[engine] {a.records:,} hostile records, default rules", flush=True)
    e = engine_run(a.records, a.seed, True, max(a.records // 5, 1))
    _, hwm = rss_mb()
    print(f"  kinds generated: {', '.join(f'{k} {v:,}' for k, v in sorted(e['kinds'].items()))}")
    print(
        f"  records tried {e['tried']:,}; crashes {e['crashes']}"
        + (f" (first: {e['first_crash']})" if e["first_crash"] else "")
    )
    print(
        f"  accepted {e['accepted']:,} (of which too late {e['late']:,}); dead letters {e['invalid']:,}: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(e["by_reason"].items()))
    )
    print(
        f"  outputs {e['outputs']:,} ({e['summary']['alerts']} alerts, {e['summary']['commands']} breaker commands); "
        f"malformed outputs {e['bad_outputs']}"
    )
    print(f"  {e['wall']:.1f} s, {e['tried'] / e['wall']:,.0f} records/s; peak RSS {hwm:,.0f} MB", flush=True)
    checks += [
        ("engine: no crash", e["crashes"] == 0),
        ("engine: every record accepted or dead-lettered, once", e["accepted"] + e["invalid"] == e["tried"]),
        ("engine: one dead-letter record per refusal", len(e["refused"]) == e["invalid"]),
        ("engine: every output valid JSON, every reason one line", e["bad_outputs"] == 0),
    ]

    if a.kafka_records > 0:
        n = min(a.kafka_records, a.records)
        print(
            f"\n[worker] the first {n:,} records (Kafka-sized) through `anomalyd run` on the embedded broker",
            flush=True,
        )
        from anomalyd.broker.embedded import EmbeddedBroker

        with EmbeddedBroker(port=0) as broker, tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
            k = kafka_run(broker.bootstrap, Path(tmp), n, a.seed, a.timeout)
        ref = engine_run(n, a.seed, False, 0)
        same, got = ref["refused"], k["refused"]
        print(
            f"  produced {k['produced']:,} in {k['produce_s']:.1f} s; all processed {k['process_s']:.1f} s after ready"
        )
        print(
            f"  dead-letter topic {k['dead_letters']:,} records ({', '.join(f'{r} {c:,}' for r, c in sorted(k['by_reason'].items()))}); "
            f"anomalyd_events_invalid_total {k['invalid_metric']:,.0f}; anomalyd_events_consumed_total {k['consumed_metric']:,.0f}"
        )
        print(
            f"  refusals: worker {len(got):,}, engine on the same records "
            f"{len(same):,}, same record and reason {sum(1 for i, r in got.items() if same.get(i) == r):,}"
        )
        print(
            f"  alerts {k['alerts']}; /healthz {k['healthz']}; exit status on SIGTERM {k['exit_code']}; "
            f"log: {k['tracebacks']} tracebacks, {k['errors']} ERROR lines",
            flush=True,
        )
        checks += [
            (
                "worker: every record processed (accepted + dead-lettered = produced)",
                k["consumed_metric"] + k["invalid_metric"] == k["produced"],
            ),
            ("worker: one dead-letter record per refusal", k["dead_letters"] == k["invalid_metric"]),
            ("worker: the same records refused for the same reasons as by the engine", got == same),
            (
                "worker: healthy, no traceback, clean exit",
                k["healthz"] == 200 and k["tracebacks"] == 0 and k["exit_code"] == 0,
            ),
        ]

    print("\n== checks ==")
    for what, ok in checks:
        print(f"  {'OK  ' if ok else 'FAIL'} {what}")
    ok = all(ok for _, ok in checks)
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
