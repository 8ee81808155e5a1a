"""The engine: rules, windows, evaluation and alert lifecycle.

Pure Python with no Kafka import, so the live worker, `replay`, `rules test`
and the benchmarks all run exactly the same code.
"""
