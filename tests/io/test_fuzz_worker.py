"""Hostile records through `anomalyd run` on Kafka (CI size; the full size is
bench/bench_fuzz.py): every record is accepted or dead-lettered, once, with
a reason; the same records are refused for the same reasons as the engine
refuses them in replay; the service stays up and healthy."""

import pytest

from tests.helpers import load_bench


@pytest.mark.kafka
def test_hostile_records_through_the_worker_are_all_accounted_for(broker, tmp_path):
    bench = load_bench("bench_fuzz")
    n = 3000
    k = bench.kafka_run(broker.bootstrap, tmp_path, n, seed=11, timeout=120)
    ref = bench.engine_run(n, 11, False, 0)
    assert ref["crashes"] == 0 and ref["invalid"] > n // 3  # hostile enough: over a third refused
    assert k["consumed_metric"] + k["invalid_metric"] == n  # every record accepted or refused
    assert k["dead_letters"] == k["invalid_metric"] and k["reasons_ok"]
    assert k["refused"] == ref["refused"]  # record for record, reason for reason
    assert k["alerts"] > 0  # the valid records among them still alert
    assert k["healthz"] == 200 and k["tracebacks"] == 0 and k["exit_code"] == 0
