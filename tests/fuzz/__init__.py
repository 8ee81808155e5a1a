"""Fuzzing. The example counts are the CI size; ANOMALYD_FUZZ_SCALE=N runs
N times as many (the full-size runs recorded in bench/README.md)."""

import os

SCALE = max(1, int(os.environ.get("ANOMALYD_FUZZ_SCALE", "1")))


def examples(n: int) -> int:
    return n * SCALE
