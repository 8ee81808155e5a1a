"""`anomalyd run`: the streaming service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from ..engine.engine import Engine
from ..engine.rules.loader import RuleLoadError, load_rules
from ..engine.types import EngineConfig
from ..surfaces.settings import Settings

log = logging.getLogger("anomalyd")


# Tansu completes a group join in half the session timeout (measured: 3.0 s
# at 6000 ms, 1.0 s at 2000 ms, with any heartbeat or rebalance timeout),
# and a Kafka cluster refuses sessions under its group.min.session.timeout.ms
# (6000 by default): a shorter session only for the embedded broker.
EMBEDDED_SESSION_TIMEOUT_MS = 2000


def session_timeout_ms(s: Settings, embedded: bool) -> int:
    """The consumer group session: SESSION_TIMEOUT_MS when set, else its
    default, or EMBEDDED_SESSION_TIMEOUT_MS on the embedded broker."""
    if embedded and "session_timeout_ms" not in s.model_fields_set:
        return EMBEDDED_SESSION_TIMEOUT_MS
    return s.session_timeout_ms


def engine_config(s: Settings) -> EngineConfig:
    return EngineConfig(
        allowed_lateness_ms=s.ms("allowed_lateness"),
        idle_timeout_ms=s.ms("idle_timeout"),
        max_groups_per_rule=s.max_groups,
        max_future_skew_ms=s.ms("max_future_skew"),
    )


async def serve(s: Settings) -> int:
    from ..io.snapshots import SnapshotFile
    from ..surfaces.api import OperatorApi, read_token
    from ..surfaces.http import serve as serve_http
    from ..surfaces.metrics import EngineCollector, PromHooks
    from ..surfaces.rules_watch import RulesWatcher

    try:
        ruleset = load_rules(s.rules_dir)
    except RuleLoadError as exc:
        for e in exc.errors:
            print(e, file=sys.stderr)
        print(f"anomalyd: rules in {s.rules_dir} failed to load; not starting", file=sys.stderr)
        return 1

    broker = None
    bootstrap = s.bootstrap_servers
    if not bootstrap:
        from ..broker.embedded import EmbeddedBroker

        broker = EmbeddedBroker(host=s.embedded_host, port=s.embedded_port)
        broker.start()
        bootstrap = broker.bootstrap
        print(f"anomalyd: embedded Kafka-compatible broker (Tansu, in memory) listening on {bootstrap}", flush=True)
        # A new embedded broker starts empty, so a snapshot saved against an
        # earlier one no longer fits: its positions and stream time would skip
        # the new records or make them late. Set aside, not deleted.
        from ..io.snapshots import SnapshotFile

        old = SnapshotFile(s.state_dir, s.group_id).path
        if old.exists():
            aside = old.with_suffix(".stale")
            os.replace(old, aside)
            print(
                f"anomalyd: the embedded broker starts empty; the state saved against an earlier one is "
                f"set aside as {aside}",
                flush=True,
            )
    try:
        from ..kafkatools.connect import KafkaSetupError, check_kafka

        try:  # one clear line for a wrong password or certificate, before any client retries
            await check_kafka(bootstrap, s.kafka_security())
        except KafkaSetupError as exc:
            print(f"anomalyd: {exc}; not starting", file=sys.stderr, flush=True)
            return 1
        log.info("Kafka at %s: connected (%s)", bootstrap, s.security_summary())
        if s.create_topics:  # the input and output topics; the runtime creates its internal ones
            from ..kafkatools.admin import ensure_topics

            names = {n: s.partitions for n in list(s.input_topics()) + list(s.output_topics().values())}
            created = await asyncio.get_running_loop().run_in_executor(
                None, lambda: ensure_topics(bootstrap, names, security=s.kafka_security())
            )
            if created:
                log.info("created topics %s", created)

        registry = CollectorRegistry()
        hooks = PromHooks(registry)
        forwarder = None
        if s.alertmanager_url:
            from ..alertmanager.forwarder import AlertmanagerForwarder

            forwarder = AlertmanagerForwarder(s.alertmanager_url)
        from ..engine import tune_gc

        tune_gc()
        common: dict[str, Any] = dict(
            input_topics=s.input_topics(),
            output_topics=s.output_topics(),
            group_id=s.group_id,
            bootstrap=bootstrap,
            checkpoint_interval_s=s.ms("checkpoint_interval") / 1000,
            session_timeout_ms=session_timeout_ms(s, embedded=broker is not None),
            security=s.kafka_security(),
            client_id=s.client_id,
            hooks=hooks,
            log_alerts=s.log_alerts,
            partition_idle_s=s.ms("partition_idle_timeout") / 1000,
            partition_live_delay_ms=s.ms("partition_live_delay"),
            alert_sink=forwarder,
            create_topics=s.create_topics,
        )
        if s.shards:
            from ..io.checkpoint_store import CheckpointStore
            from ..io.sharded import scaleout_worker

            worker = scaleout_worker(
                make_engine=lambda: Engine(ruleset, engine_config(s)),
                repartition_topic=s.topic_repartition,
                shard_count=s.shards,
                checkpoints=CheckpointStore(bootstrap, s.topic_checkpoint_store, s.kafka_security(), s.client_id),
                **common,
            )
            print(
                f"anomalyd: scale-out mode, {s.shards} shards (repartition topic {s.topic_repartition}, "
                f"checkpoint store {s.topic_checkpoint_store})",
                flush=True,
            )
        else:
            from ..io.direct import direct_worker

            worker = direct_worker(
                engine=Engine(ruleset, engine_config(s)), snapshots=SnapshotFile(s.state_dir, s.group_id), **common
            )

        print(
            f"anomalyd: {len(ruleset.enabled())} rules from {s.rules_dir} (version {ruleset.version}); "
            f"metrics on http://{s.metrics_host}:{s.metrics_port}/metrics",
            flush=True,
        )

        def good(rs):
            hooks.reload(True)
            worker.request_reload(rs)

        def bad(errors):
            hooks.reload(False)
            log.error("rules edit refused, the previous rules keep running:\n%s", "\n".join(str(e) for e in errors))

        watcher = RulesWatcher(s.rules_dir, good, bad)
        registry.register(EngineCollector(worker, watcher))
        load = None
        if broker is not None:
            from ..broker.watch import BrokerLoad

            load = BrokerLoad(broker.usage)
            registry.register(load)
        loop = asyncio.get_running_loop()
        try:
            token = read_token(s.console_token_file)
        except (OSError, ValueError) as exc:
            print(f"anomalyd: ANOMALYD_CONSOLE_TOKEN_FILE: {exc}; not starting", file=sys.stderr, flush=True)
            return 1
        api = OperatorApi(
            lambda: [e for st in worker.stages for e in st.strategy.evaluating_engines()],
            lambda topic, key, value: worker.producer.send(topic, key=key, value=value),
            loop,
            s.topic_operator_actions,
            token,
        )
        log.info(
            "operators' console on http://%s:%d/console (%s)",
            s.metrics_host,
            s.metrics_port,
            "actions need the token" if token else "read-only: no ANOMALYD_CONSOLE_TOKEN_FILE",
        )
        http = serve_http(s.metrics_host, s.metrics_port, registry, lambda: worker.alive, lambda: worker.ready, api)
        loop.add_signal_handler(signal.SIGTERM, worker.stopping.set)
        loop.add_signal_handler(signal.SIGINT, worker.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: watcher.check(force=True))

        async def watch():
            while not worker.stopping.is_set():
                await asyncio.sleep(s.ms("reload_interval") / 1000)
                watcher.check()

        async def watch_broker(load):
            while not worker.stopping.is_set():
                load.sample()
                await asyncio.sleep(5)

        watch_task = asyncio.create_task(watch())
        load_task = asyncio.create_task(watch_broker(load)) if load is not None else None
        am_task = asyncio.create_task(forwarder.run()) if forwarder else None
        try:
            await worker.run()
        finally:
            watch_task.cancel()
            if load_task is not None:
                load_task.cancel()
            if forwarder is not None:
                await forwarder.close(timeout=3)  # never holds the shutdown for long
            if am_task is not None:
                am_task.cancel()
            http.shutdown()
        print("anomalyd: stopped", flush=True)
        return 0
    finally:
        if broker is not None:
            broker.stop()


def run(s: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return asyncio.run(serve(s))
