"""Prometheus metrics. Engine figures are read at scrape time by a collector
(no per-event cost); latencies are histograms observed through worker hooks."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..engine.actions import ACTIONS
from ..io.runtime import Hooks, Runtime

REASONS = (
    "invalid_json",
    "not_utf8",
    "not_object",
    "missing_field",
    "invalid_field",
    "unknown_topic",
    "bad_envelope",
    "future_ts",
)


class EngineCollector:
    """Counters count from this process's start, as Prometheus expects: the
    engine's own figures survive restarts in its snapshot, so the values at
    start are subtracted (otherwise a restart after a crash would look like a
    counter going backwards, and rate() would spike). The lifetime totals are
    exported as gauges."""

    def __init__(self, worker: Runtime, watcher=None):
        self.w = worker
        self.watcher = watcher

    def collect(self):
        w = self.w
        cnt, gau = w.counters(), w.gauges()
        c = CounterMetricFamily("anomalyd_events_consumed", "Valid events consumed, by source topic", labels=["topic"])
        for topic, source in sorted(w.input_topics.items()):
            c.add_metric([topic], cnt["consumed"].get(source, 0))
        yield c
        c = CounterMetricFamily(
            "anomalyd_events_invalid", "Records sent to the dead-letter topic, by reason", labels=["reason"]
        )
        for reason in sorted(set(REASONS) | set(cnt["invalid"])):
            c.add_metric([reason], cnt["invalid"].get(reason, 0))
        yield c
        yield GaugeMetricFamily(
            "anomalyd_events_processed_lifetime",
            "Events processed (valid or dead-lettered) since the state began, restarts included",
            value=gau["lifetime"],
        )
        yield CounterMetricFamily(
            "anomalyd_events_late", "Events later than allowed_lateness (not evaluated)", value=cnt["late"]
        )
        yield CounterMetricFamily(
            "anomalyd_events_out_of_order",
            "Events older than the stream's time, evaluated within allowed_lateness "
            "(results may then differ from a time-ordered replay)",
            value=cnt["out_of_order"],
        )
        a = CounterMetricFamily(
            "anomalyd_alerts", "Alert state changes", labels=["rule_id", "severity", "status", "mode"]
        )
        b = CounterMetricFamily("anomalyd_breaker_commands", "Breaker commands", labels=["rule_id", "action"])
        g = GaugeMetricFamily("anomalyd_rule_groups", "Groups with live state", labels=["rule_id"])
        f = GaugeMetricFamily("anomalyd_alerts_firing", "Alerts firing now", labels=["rule_id", "mode"])
        e = CounterMetricFamily(
            "anomalyd_rule_evictions", "Group states evicted (idle or over the cap)", labels=["rule_id"]
        )
        x = CounterMetricFamily(
            "anomalyd_alerts_evicted",
            "Firing alerts forgotten over the cap (no resolved record; breakers lapse at expires_at)",
            labels=["rule_id"],
        )
        o = GaugeMetricFamily("anomalyd_breakers_open", "Breaker scopes open now", labels=["rule_id"])
        xe = CounterMetricFamily(
            "anomalyd_expression_errors",
            "Rule expressions that failed on an event (false / no verdict)",
            labels=["rule_id"],
        )
        dc = CounterMetricFamily(
            "anomalyd_distinct_capped",
            "Values not kept by a distinct aggregate over its per-group cap (the figure is then a lower bound)",
            labels=["rule_id"],
        )
        so = CounterMetricFamily(
            "anomalyd_sequence_outcomes", "How a sequence rule's expectations ended", labels=["rule_id", "outcome"]
        )
        for rid, r in sorted(gau["rules"].items()):
            mode = r["mode"]
            for kind, n in sorted(cnt.get("outcomes", {}).get(rid, {}).items()):
                so.add_metric([rid, kind], n)
            for (sev, status), n in sorted(cnt["alerts"].get(rid, {}).items()):
                a.add_metric([rid, sev, status, mode], n)
            for action, n in sorted(cnt["commands"].get(rid, {}).items()):
                b.add_metric([rid, action], n)
            g.add_metric([rid], r["groups"])
            f.add_metric([rid, mode], r["firing"])
            e.add_metric([rid], cnt["evicted"].get(rid, 0))
            x.add_metric([rid], cnt["alerts_evicted"].get(rid, 0))
            o.add_metric([rid], r["open"])
            xe.add_metric([rid], cnt.get("expr_errors", {}).get(rid, 0))
            if rid in cnt.get("distinct_capped", {}):
                dc.add_metric([rid], cnt["distinct_capped"][rid])
        yield from (a, b, g, f, e, x, o, xe, dc, so)
        oa = CounterMetricFamily(
            "anomalyd_operator_actions", "Operator actions applied (refused ones are dead letters)", labels=["action"]
        )
        for action in ACTIONS:
            oa.add_metric([action], cnt.get("operator_actions", {}).get(action, 0))
        yield oa
        yield GaugeMetricFamily("anomalyd_rules_loaded", "Enabled rules running", value=gau["rules_loaded"])
        info = GaugeMetricFamily("anomalyd_ruleset_info", "Version of the running rule set", labels=["version"])
        info.add_metric([gau["version"] or "none"], 1)
        yield info
        now = gau["stream_time"]
        yield GaugeMetricFamily(
            "anomalyd_stream_time_seconds",
            "The stream's event time (epoch seconds)",
            value=now / 1000 if now >= 0 else 0,
        )
        yield GaugeMetricFamily(
            "anomalyd_reorder_buffer_events",
            "Events in reorder buffers, waiting for the watermark (slower partitions)",
            value=gau["buffered"],
        )
        yield GaugeMetricFamily("anomalyd_assigned_partitions", "Input partitions assigned", value=len(w.assigned))
        yield GaugeMetricFamily("anomalyd_ready", "1 when assigned, restored and connected", value=1 if w.ready else 0)
        lag = GaugeMetricFamily(
            "anomalyd_consumer_lag_records",
            "High watermark minus position, per input partition",
            labels=["topic", "partition"],
        )
        for (topic, part), n in sorted(w.lag.items()):
            lag.add_metric([topic, str(part)], n)
        yield lag
        if self.watcher is not None:
            yield GaugeMetricFamily(
                "anomalyd_rules_dir_valid",
                "1 if the rules directory as it is now loads",
                value=1 if self.watcher.valid else 0,
            )


class PromHooks(Hooks):
    def __init__(self, registry: CollectorRegistry):
        self.latency = Histogram(
            "anomalyd_event_to_alert_latency_seconds",
            "Wall clock at emit minus the alert's event time",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "anomalyd_batch_processing_seconds",
            "Time to decode and evaluate one fetched batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=registry,
        )
        self.records = Counter("anomalyd_records_fetched", "Input records fetched from Kafka", registry=registry)
        self.snap = Histogram(
            "anomalyd_checkpoint_seconds",
            "Time to flush outputs and write a checkpoint (the snapshot file, or the checkpoint store)",
            registry=registry,
        )
        self.snap_bytes = Gauge("anomalyd_checkpoint_bytes", "Size of the last checkpoint", registry=registry)
        self.last_snap = Gauge(
            "anomalyd_checkpoint_timestamp_seconds", "Wall clock of the last checkpoint", registry=registry
        )
        self.reloads = Counter("anomalyd_rule_reloads", "Successful rule reloads", registry=registry)
        self.reload_failures = Counter(
            "anomalyd_rule_reload_failures", "Rule edits refused (old rules kept)", registry=registry
        )

    def alert_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def batch(self, seconds: float, records: int) -> None:
        if records:
            self.batch_seconds.observe(seconds)
            self.records.inc(records)

    def checkpoint(self, seconds: float, size: int) -> None:
        self.snap.observe(seconds)
        self.snap_bytes.set(size)
        self.last_snap.set(time.time())

    def reload(self, ok: bool) -> None:
        (self.reloads if ok else self.reload_failures).inc()
