"""Probe: faust-streaming 0.15.3 against the embedded Tansu broker.

Measures how fast a single faust worker drains a pre-filled topic with one
agent (concurrency=1 by default) that counts records, either in a plain
Python counter or in a faust Table (changelogged).

    python notes/faust_probe.py                      # all scenarios, own broker
    python notes/faust_probe.py --n 20000 --only counter
    python notes/faust_probe.py --bootstrap 127.0.0.1:9092 ...

Each scenario runs in a fresh subprocess (a faust Worker closes its event
loop on shutdown) with a fresh topic and app id; the results are printed as
one JSON line per scenario plus a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SCENARIOS = {
    # name: (mode, concurrency, stream_buffer_maxsize)
    "counter": ("counter", 1, 4096),
    "table": ("table", 1, 4096),
    "counter-buf64k": ("counter", 1, 65536),
    "counter-take100": ("take", 1, 4096),
    # issue #497: table writes inside take()/take_events()
    "take-table": ("take-table", 1, 4096),
    "take-table-partitioner": ("take-table-up", 1, 4096),
}


# --------------------------------------------------------------------------
# child: one faust worker
# --------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    import asyncio
    import signal

    import faust

    result: dict = {
        "scenario": args.scenario,
        "mode": args.mode,
        "n": args.n,
        "partitions": args.partitions,
        "concurrency": args.concurrency,
        "stream_buffer_maxsize": args.buffer,
        "session_timeout_s": args.session_timeout,
    }
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        topic_replication_factor=1,
        topic_partitions=args.partitions,
        # Tansu completes a JoinGroup only after session_timeout/2, so the
        # faust default (60 s) means a 30 s wait before the first event.
        broker_session_timeout=args.session_timeout,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=args.session_timeout,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=args.buffer,
        web_enabled=False,
        producer_acks=-1,
    )
    topic = app.topic(args.topic, partitions=args.partitions, value_type=bytes)
    table = None
    if args.mode in ("table", "recover", "take-table", "take-table-up"):
        # Explicit serializers: with app-level key/value_serializer="raw" the
        # changelog is written raw but read back as JSON on recovery (see notes).
        table = app.Table(
            "counts",
            default=int,
            partitions=args.partitions,
            use_partitioner=args.mode == "take-table-up",
            schema=faust.Schema(
                key_type=str, value_type=int, key_serializer="json", value_serializer="json"
            ),
        )

    state = {"count": 0, "t_first": None, "t_last": None, "done": False}
    t_start = time.monotonic()

    def seen(k: int) -> None:
        now = time.monotonic()
        if state["t_first"] is None:
            state["t_first"] = now
        state["count"] += k
        if state["count"] >= args.n and not state["done"]:
            state["done"] = True
            state["t_last"] = now
            os.kill(os.getpid(), signal.SIGTERM)  # worker's own handler stops it

    if args.mode == "take":

        @app.agent(topic, concurrency=args.concurrency)
        async def count_batches(stream):
            async for batch in stream.take(100, within=0.5):
                seen(len(batch))

    elif args.mode in ("take-table", "take-table-up"):

        @app.agent(topic, concurrency=args.concurrency)
        async def count_take_table(stream):
            async for events in stream.take_events(100, within=0.5):
                try:
                    for ev in events:
                        table[(ev.key or b"none").decode()] += 1
                except Exception as exc:  # issue #497
                    result.setdefault("error", f"{type(exc).__name__}: {exc}")
                    state["done"] = True
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                seen(len(events))

    elif table is not None:

        @app.agent(topic, concurrency=args.concurrency)
        async def count_table(stream):
            async for event in stream.events():
                table[(event.key or b"none").decode()] += 1
                seen(1)

    else:

        @app.agent(topic, concurrency=args.concurrency)
        async def count_plain(stream):
            async for _value in stream:
                seen(1)

    if args.mode == "recover":
        # Restart of a finished "table" app (same app id): nothing new to
        # consume; report what changelog recovery restored.
        @app.timer(interval=0.25)
        async def report_recovered():
            if state["done"] or not app.tables.recovery.completed.is_set():
                return
            await asyncio.sleep(1.0)  # let late changelog batches land
            state["done"] = True
            result["recovery_done_after_s"] = round(time.monotonic() - t_start, 2)
            result["recovered_sum"] = sum(table.values())
            result["recovered_keys"] = len(table)
            os.kill(os.getpid(), signal.SIGTERM)

    @app.timer(interval=1.0)
    async def watchdog():
        if time.monotonic() - t_start > args.timeout and not state["done"]:
            result["error"] = f"timeout after {args.timeout}s with {state['count']} events"
            state["done"] = True
            os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    t_end = time.monotonic()
    result["count"] = state["count"]
    if state["t_first"] is not None:
        result["first_event_after_s"] = round(state["t_first"] - t_start, 2)
    if state["t_last"] is not None and state["t_first"] is not None:
        span = state["t_last"] - state["t_first"]
        result["drain_s"] = round(span, 3)
        result["events_per_s"] = round((state["count"] - 1) / span) if span > 0 else None
    result["total_s"] = round(t_end - t_start, 2)
    if table is not None and args.mode != "recover":
        result["table_sum"] = sum(table.values()) if state["count"] else 0
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# parent: broker + data + scenarios
# --------------------------------------------------------------------------


def _save_log(name: str, proc: subprocess.CompletedProcess) -> None:
    path = os.path.join(tempfile.gettempdir(), f"faust_probe-{name}.log")
    with open(path, "w") as fh:
        fh.write(proc.stderr)
        fh.write(proc.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--session-timeout", type=float, default=6.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    p.add_argument("--loglevel", default="warning")
    # child-only
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--scenario", default="counter", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="counter", help=argparse.SUPPRESS)
    p.add_argument("--buffer", type=int, default=4096, help=argparse.SUPPRESS)
    p.add_argument("--topic", help=argparse.SUPPRESS)
    p.add_argument("--app-id", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        run_worker(args)
        return

    from anomalyd.io.admin import ensure_topics, produce_jsonl
    from anomalyd.io.broker import EmbeddedBroker

    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = EmbeddedBroker(port=0, keep_log=True).start()
        bootstrap = broker.bootstrap
        print(f"broker {bootstrap} log {broker.log_path}", flush=True)
    results = []
    try:
        for name in args.only or list(SCENARIOS):
            mode, conc, buf = SCENARIOS[name]
            conc = args.concurrency if args.concurrency != 1 else conc
            suffix = uuid.uuid4().hex[:6]
            topic = f"probe-{name}-{suffix}"
            ensure_topics(bootstrap, {topic: args.partitions})
            t0 = time.monotonic()
            produce_jsonl(
                bootstrap,
                (
                    (topic, f"store-{i % 50}", b'{"seq": %d, "amount": 12.5}' % i)
                    for i in range(args.n)
                ),
            )
            produce_s = time.monotonic() - t0
            cmd = [
                sys.executable, os.path.abspath(__file__), "--child",
                "--bootstrap", bootstrap, "--n", str(args.n),
                "--partitions", str(args.partitions), "--concurrency", str(conc),
                "--session-timeout", str(args.session_timeout),
                "--timeout", str(args.timeout), "--loglevel", args.loglevel,
                "--scenario", name, "--mode", mode, "--buffer", str(buf),
                "--topic", topic, "--app-id", f"probe-{name}-{suffix}",
            ]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout + 60
            )
            # the worker's spinner may prefix the line with terminal escapes
            lines = [ln for ln in proc.stdout.splitlines() if "RESULT {" in ln]
            if lines:
                res = json.loads(lines[-1].split("RESULT ", 1)[1])
            else:
                res = {"scenario": name, "error": f"no result (rc={proc.returncode})"}
            res["produce_s"] = round(produce_s, 2)
            res["rc"] = proc.returncode
            errs = [
                ln for ln in (proc.stderr + proc.stdout).splitlines()
                if any(w in ln for w in ("ERROR", "Traceback", "Error", "WARNING"))
            ]
            res["log_issues"] = errs[:12]
            _save_log(name, proc)
            print(json.dumps(res), flush=True)
            results.append(res)
            if mode == "table":
                i_app = cmd.index("--app-id") + 1
                cmd2 = list(cmd)
                cmd2[cmd2.index("--mode") + 1] = "recover"
                cmd2[cmd2.index("--scenario") + 1] = "table-restart"
                cmd2[i_app] = cmd[i_app]
                proc = subprocess.run(
                    cmd2, capture_output=True, text=True, timeout=args.timeout + 60
                )
                lines = [ln for ln in proc.stdout.splitlines() if "RESULT {" in ln]
                res2 = (
                    json.loads(lines[-1].split("RESULT ", 1)[1])
                    if lines
                    else {"scenario": "table-restart", "error": f"rc={proc.returncode}"}
                )
                res2["expected_sum"] = args.n
                _save_log("table-restart", proc)
                print(json.dumps(res2), flush=True)
                results.append(res2)
    finally:
        if broker is not None:
            broker.stop()

    print("\nscenario                  events/s  drain_s  first_event_s  total_s  count")
    for r in results:
        print(
            f"{r.get('scenario', '?'):<24} {str(r.get('events_per_s')):>9} "
            f"{str(r.get('drain_s')):>8} {str(r.get('first_event_after_s')):>14} "
            f"{str(r.get('total_s')):>8} {r.get('count')}"
            + (f"  recovered_sum={r['recovered_sum']}/{r['expected_sum']}" if "recovered_sum" in r else "")
            + (f"  error={r['error']}" if "error" in r else "")
        )


if __name__ == "__main__":
    main()
