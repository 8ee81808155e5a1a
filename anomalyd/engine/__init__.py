"""The engine: rules, windows, evaluation and alert lifecycle.

Pure Python with no Kafka import, so the live worker, `replay`, `rules test`
and the benchmarks all run exactly the same code.
"""


def tune_gc() -> None:
    """Long-lived engine state makes CPython's default cyclic GC thresholds
    (a collection every 700 allocations, full ones scanning every group)
    cost ~10% of throughput; the engine creates no reference cycles per
    event, so collect far less often."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
