"""A reduced soak (the hour-long one is bench/bench_soak.py): steady simulated
traffic through `anomalyd run` for 30 s. What users see: every produced event
is counted by the service, nothing goes to the dead-letter topic, alerts keep
coming, no crash, the lag is back to 0 at the end, memory does not run away.
No timing figures are asserted."""

import pytest

from tests.helpers import load_bench


@pytest.mark.kafka
def test_steady_traffic_for_30s_every_event_counted_and_the_service_stays_healthy(broker, tmp_path):
    bench = load_bench("bench_soak")
    lines: list[str] = []
    res = bench.soak(
        broker.bootstrap,
        tmp_path,
        duration=30,
        rate=400,
        sample_s=5,
        inject_every=1.0,
        partitions=4,
        drift_s=15,
        broker_pid=broker.pid,
        out=lines.append,
    )
    report = "\n".join(lines) + "\n" + res["log"][-2000:]
    assert res["crashes"] == 0, report
    assert res["exit_code"] == 0, report  # clean stop on SIGTERM
    assert res["failed"] == 0 and res["acked"] == res["sent"], report
    assert res["sent"] > 10_000, report
    assert res["lost"] == 0, report  # every acknowledged record processed...
    assert res["processed"] == res["acked"], report  # ...exactly once
    assert res["dead"] == 0, report
    assert res["final_lag"] == 0, report
    assert res["reader_error"] is None, report
    assert res["alerts_read"] >= res["injected"], report  # each injection fires (and is resolved)
    rows = [r for r in res["rows"] if r["rss"] is not None]
    assert rows[-1]["rss"] - rows[1]["rss"] < 100, report  # MB; loose: the service holds a bounded state here
