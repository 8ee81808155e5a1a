"""Where the worker's time goes, from a py-spy profile of bench_stream.py.

    py-spy record -r 200 -f raw -o /tmp/prof.txt -- \\
        .venv/bin/python bench/bench_stream.py --events 200000 --latency-seconds 0 --variant-seconds 0
    .venv/bin/python bench/profile_shares.py /tmp/prof.txt

Prints, of the samples whose stack is in the runtime or aiokafka (the
backlog's production by kafka-python is left out), the share of those
that pass through each named function (inclusive, so they overlap).
"""

from __future__ import annotations

import sys
from collections import Counter

FRAMES = {
    "Direct.process (a turn)": "process (anomalyd/io/direct.py",
    "Engine.process_event": "process_event (anomalyd/engine/engine.py",
    "decode_value (validation)": "decode_value",
    "aiokafka getmany": "getmany (",
    "ReorderBuffer.ready": "ready (anomalyd/io/ordering.py",
    "ReorderBuffer.push / push_many": "push",
    "Runtime.checkpoint": "checkpoint (anomalyd/io/runtime.py",
    "snapshot.dump": "dump (anomalyd/engine/snapshot.py",
    "Runtime.emit": "emit (anomalyd/io/runtime.py",
}


def main(path: str) -> None:
    total, shares = 0, Counter()
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        if "anomalyd/io/runtime.py" not in stack and "aiokafka" not in stack:
            continue
        total += int(n)
        for name, frame in FRAMES.items():
            if frame in stack and (name != "ReorderBuffer.push / push_many" or "ordering.py" in stack):
                shares[name] += int(n)
    print(f"{total:,} samples in the runtime or aiokafka")
    for name, n in shares.most_common():
        print(f"  {name:<32} {n / total:6.1%}")


if __name__ == "__main__":
    main(sys.argv[1])
