"""The streaming runtime: one loop, with a strategy plugged into it.

Built directly on aiokafka (the client faust-streaming wraps); see
notes/streaming.md for the measurements behind that choice. The
:class:`Runtime` owns what every mode needs: the producer, one consumer per
stage (set-up, subscription, rebalance listener, fetch loop), the broker
watch, bounded flush-then-commit checkpoints, output delivery, rule reloads
and shutdown. What a stage does with the records it fetches is its
:class:`Strategy`:

- direct mode: one stage, :class:`anomalyd.io.direct.Direct` (read, reorder,
  evaluate, snapshot to a file);
- scale-out: two stages, as Kafka Streams runs two sub-topologies around a
  repartition topic: :class:`anomalyd.io.sharded.Router` (read, validate,
  re-key to the repartition topic, send watermarks) and
  :class:`anomalyd.io.sharded.Shards` (evaluate, checkpoint to the state
  store).

Guarantees (both modes): at least once; outputs are flushed to Kafka before
a checkpoint records the input positions they came from, and offsets are
committed only after that; the engine sees one time-ordered stream.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any, AsyncContextManager, Callable, Iterator, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from ..engine.engine import Engine
from ..engine.rules.loader import RuleSet
from ..engine.structs import EventStruct
from ..engine.timeutil import format_duration, parse_ts
from .kafkalog import quiet_aiokafka
from .ordering import Part
from .records import Origin, new_record

log = logging.getLogger("anomalyd.worker")

# getmany() does not tell an outage from a quiet stream: it returns empty
# batches either way (aiokafka #1073). After this long without a fetch
# response the runtime asks the broker for metadata, and calls it down if
# that gets no answer in the same time.
BROKER_SILENCE_S = 3.0
# A checkpoint waits this long for the broker to acknowledge outputs or a
# commit, then tries again later: the loop (and /healthz) keeps turning.
KAFKA_WAIT_S = 10.0
# How long a fetch may wait at the broker for data. Tansu does not answer a
# waiting fetch when data arrives (measured: p50 7.5 ms, max 25 ms of added
# delay at 50 ms), so this bounds part of the event-to-alert latency.
FETCH_MAX_WAIT_MS = 50
DEAD_LETTER_LOG_S = 10.0  # at most one "dead-lettered N records" line this often


class OutputNotDelivered(RuntimeError):
    """Kafka refused or expired an output (aiokafka expires a batch it could not
    deliver in request_timeout_ms, 40 s). No checkpoint may pass it: the process
    stops, and its restart produces the output again from the last checkpoint."""


# -- figures -------------------------------------------------------------------------
def figures(eng: Engine) -> dict:
    """An engine's cumulative counts, as plain nested dicts."""
    return {
        "consumed": dict(eng.consumed),
        "invalid": dict(eng.invalid),
        "late": eng.late,
        "out_of_order": eng.disorder,
        "alerts": {rid: dict(r.life.counts) for rid, r in eng.runners.items()},
        "commands": {rid: dict(r.life.commands) for rid, r in eng.runners.items()},
        "evicted": {rid: r.evicted() for rid, r in eng.runners.items()},
        "alerts_evicted": {rid: r.life.evicted for rid, r in eng.runners.items()},
        "expr_errors": {rid: r.expr_errors() for rid, r in eng.runners.items()},
        "distinct_capped": {rid: r.capped() for rid, r in eng.runners.items() if hasattr(r, "capped")},
        "outcomes": {rid: r.outcome_counts() for rid, r in eng.runners.items() if hasattr(r, "outcome_counts")},
        "operator_actions": dict(eng.actions),
    }


def _combine(a: Any, b: Any, sign: int) -> Any:
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        return {k: _combine(a.get(k), b.get(k), sign) for k in a.keys() | b.keys()}
    return (a or 0) + sign * (b or 0)


def subtract(a: dict, b: dict) -> dict:
    return _combine(a, b, -1)


def add(a: dict, b: dict) -> dict:
    return _combine(a, b, 1)


def gauges(evaluating: list[Engine], reading: list[Engine], buffered: int) -> dict:
    """Point-in-time figures: rule state summed over the engines that
    evaluate (one, or one per shard); the lifetime count over those that read
    the input (the direct engine, or the router's)."""
    rules: dict[str, dict] = {}
    for eng in evaluating:
        for rid, r in eng.runners.items():
            g = rules.setdefault(rid, {"mode": r.rule.mode, "groups": 0, "firing": 0, "open": 0})
            g["groups"] += r.groups()
            g["firing"] += len(r.life.active)
            g["open"] += len(r.life.scopes)
    first = next(iter(evaluating or reading), None)
    return {
        "rules": rules,
        "buffered": buffered,
        "lifetime": sum(sum(e.consumed.values()) + sum(e.invalid.values()) for e in reading),
        "rules_loaded": len(first.runners) if first else 0,
        "version": first.ruleset_version if first else "",
        "stream_time": max((e.clock.now for e in evaluating), default=-1),
    }


class Hooks:
    """Observation points for the metrics surface (no-ops by default)."""

    def alert_latency(self, seconds: float) -> None: ...
    def batch(self, seconds: float, records: int) -> None: ...
    def checkpoint(self, seconds: float, size: int) -> None: ...
    def reload(self, ok: bool) -> None: ...


class DeadLetterLog:
    """Says in the service log what was dead-lettered, counted by reason, at
    most once per `every_s` (a flood of bad records must not flood the log):
    `dead-lettered 5 records in the last 10s (invalid_field 3, not_utf8 2)`."""

    def __init__(self, every_s: float = DEAD_LETTER_LOG_S, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self.counts: Counter[str] = Counter()
        self.since: float | None = None  # the window's start: the previous line, else the first record counted
        self.logged = False

    def count(self, reason: str) -> None:
        if self.since is None:
            self.since = self.clock()
        self.counts[reason] += 1

    def report(self) -> None:
        """Log the counts, if any, unless the previous line is less than `every_s` old."""
        if not self.counts or self.since is None:
            return
        now = self.clock()
        window = now - self.since
        if self.logged and window < self.every_s:
            return
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.counts.items(), key=lambda x: (-x[1], x[0])))
        n = sum(self.counts.values())
        log.warning(
            "dead-lettered %d record%s in the last %s (%s); see the dead-letter topic",
            n,
            "" if n == 1 else "s",
            format_duration(max(1, round(window)) * 1000),
            reasons,
        )
        self.counts.clear()
        self.since, self.logged = now, True


def decode_or_dead_letter(
    engine: Engine, source: str, origin: Origin, key: bytes | None, value: bytes | None, dead: list
) -> EventStruct | None:
    """An input record, validated: its event, or None with its dead letter
    appended to `dead` (invalid, or too far in the future: refused when read,
    before any buffer, see Engine.too_far_ahead). Every stage that reads
    input reads it through here."""
    topic, partition, offset = origin
    ev, bad = engine.decode_record(source, value if value is not None else b"", topic, partition, offset, key)
    if bad is not None:
        dead.append(bad)
        return None
    if engine.too_far_ahead(ev.ts):
        dead.append(engine.refuse_future(source, ev, value, topic, partition=partition, offset=offset, key=key))
        return None
    return ev


class TopicSpec(NamedTuple):
    """An internal topic a strategy needs: created by the runtime at start."""

    partitions: int
    configs: dict[str, str] | None = None


class Saved(NamedTuple):
    """What a strategy's checkpoint wrote: the offsets to commit once it is
    durable, the size of the state written (None: no state), and whether it
    sent records (state chunks, watermarks) that must be flushed first."""

    offsets: dict[TopicPartition, int]
    size: int | None = None
    sent: bool = False


class Strategy(abc.ABC):
    """What one stage does with what its consumer fetches. The defaults are
    what a stage without the need does; the runtime calls, in order:
    `attach`, `restore`, then per assignment `assigned` / `revoked`, per turn
    `process`, per checkpoint `save`."""

    name = "stage"
    group_suffix = ""  # the stage's consumer group: the service's group id + this
    fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    checkpoint_interval_s: float | None = None  # None: the service's checkpoint interval
    evaluates = True  # its assignment is what anomalyd_assigned_partitions shows
    lock: AsyncContextManager = contextlib.nullcontext()  # held by a turn and by a revocation's checkpoint

    def attach(self, runtime: Runtime, stage: Stage) -> None:
        self.rt, self.stage = runtime, stage

    @abc.abstractmethod
    def topics(self) -> list[str]:
        """The topics the stage's consumer subscribes to."""

    def internal_topics(self) -> dict[str, TopicSpec]:
        """The topics only this stage reads or writes (none in direct mode)."""
        return {}

    def restore(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Before the consumers start (direct mode reads its snapshot file)."""

    async def assigned(self, tps: set[TopicPartition]) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Partitions assigned, before their first batch (the router needs
        nothing: a partition's progress starts at its first batch or position)."""

    @abc.abstractmethod
    def revoked(self, tps: set[TopicPartition]) -> None:
        """Partitions taken away, after their checkpoint: forget them."""

    @abc.abstractmethod
    async def process(self, batch: dict) -> tuple[list, int] | None:
        """A turn: the outputs to emit and how many records it took, or None
        when there was nothing to do."""

    @abc.abstractmethod
    async def save(self, why: str, only: set[TopicPartition] | None) -> Saved | None:
        """Record the state behind the outputs flushed so far (of `only`'s
        partitions, when given); None: nothing to commit."""

    def poll_ms(self) -> int:
        return 20 if self.pending() else 200  # briskly while events wait for a quiet partition's grace period

    def pending(self) -> int:
        return 0

    @abc.abstractmethod
    def apply_rules(self, rs: RuleSet) -> None:
        """Swap in a reloaded rule set, between turns."""

    @abc.abstractmethod
    def counters(self) -> dict:
        """This process's counts (see `figures`)."""

    def evaluating_engines(self) -> list[Engine]:
        return []

    def reading_engines(self) -> list[Engine]:
        return []


class ReadsInput(Strategy):
    """A stage that reads the input topics through one engine (direct mode,
    the router): its counts are that engine's, from this process's start."""

    def __init__(self, engine: Engine, input_topics: dict[str, str]):
        self.engine = engine
        self.input_topics = input_topics
        self.baseline = figures(engine)

    def topics(self) -> list[str]:
        return list(self.input_topics)

    def decoded(self, batch: dict, dead: list) -> Iterator[tuple[str, Part, list[tuple[Origin, Any, EventStruct]]]]:
        """Per input partition of a fetched batch: its source, (topic,
        partition) and valid events as (origin, record, event), one partition
        at a time (what is per partition is then done once, not per record).
        The dead letters of the others are appended to `dead`, and `read_to`
        is told the next offset."""
        engine = self.engine
        for tp, recs in batch.items():
            if not recs:
                continue
            topic, partition = tp.topic, tp.partition
            source = self.input_topics[topic]
            valid = []
            for rec in recs:
                origin = new_record(Origin, (topic, partition, rec.offset))
                ev = decode_or_dead_letter(engine, source, origin, rec.key, rec.value, dead)
                if ev is not None:
                    valid.append((origin, rec, ev))
            part = (topic, partition)
            self.read_to(part, recs[-1].offset + 1)
            yield source, part, valid

    @abc.abstractmethod
    def read_to(self, part: tuple[str, int], next_offset: int) -> None:
        """An input partition has been read up to `next_offset`."""

    def counters(self) -> dict:
        return subtract(figures(self.engine), self.baseline)

    def reading_engines(self) -> list[Engine]:
        return [self.engine]


class Stage:
    """One consumer and the strategy that handles what it fetches."""

    consumer: AIOKafkaConsumer  # made by Runtime.run, before the stage's loop and listener run

    def __init__(self, strategy: Strategy, group_id: str, client_id: str):
        self.strategy = strategy
        self.group_id, self.client_id = group_id, client_id
        self.assigned: set[TopicPartition] = set()
        self.last_loop = time.monotonic()
        self.task: asyncio.Task | None = None


class _Listener(ConsumerRebalanceListener):
    def __init__(self, rt: Runtime, stage: Stage):
        self.rt, self.stage = rt, stage

    async def on_partitions_revoked(self, revoked):
        st, s = self.stage, self.stage.strategy
        if revoked:
            async with s.lock:  # a turn in hand finishes first
                if self.rt.started:
                    await self.rt.checkpoint(st, "rebalance", only=set(revoked))
                s.revoked(set(revoked))
        st.assigned -= set(revoked)

    async def on_partitions_assigned(self, assigned):
        await self.stage.strategy.assigned(set(assigned))
        self.stage.assigned |= set(assigned)
        log.info("%s: %d partitions assigned", self.stage.strategy.name, len(assigned))


class Runtime:
    """The loop both modes run: see the module's docstring."""

    producer: AIOKafkaProducer  # made by run(), before any stage starts

    def __init__(
        self,
        *,
        bootstrap: str,
        input_topics: dict[str, str],
        output_topics: dict[str, str],
        group_id: str,
        strategies: list[Strategy],
        checkpoint_interval_s: float = 5.0,
        session_timeout_ms: int = 6000,
        security: dict | None = None,
        client_id: str = "anomalyd",
        hooks: Hooks | None = None,
        log_alerts: bool = True,
        alert_sink: Any = None,
        create_topics: bool = False,
    ):
        self.bootstrap = bootstrap
        self.input_topics = input_topics
        self.output_topics = output_topics
        self.group_id = group_id
        self.session_timeout_ms = session_timeout_ms
        self.security = security or {}
        self.client_id = client_id
        self.hooks = hooks or Hooks()
        self.log_alerts = log_alerts
        self.alert_sink = alert_sink  # e.g. the Alertmanager forwarder: submit(alert) never blocks
        self.create_topics = create_topics  # the internal topics the strategies need
        self.lag: dict[tuple[str, int], int] = {}  # input partition -> high watermark minus position
        self.stages: list[Stage] = []
        for s in strategies:
            if s.checkpoint_interval_s is None:
                s.checkpoint_interval_s = checkpoint_interval_s
            st = Stage(s, group_id + s.group_suffix, client_id + (f"-{s.name}" if s.group_suffix else ""))
            s.attach(self, st)
            self.stages.append(st)
        self.stopping = asyncio.Event()
        self.started = False  # state restored: checkpoints may be written
        self.loop_started = False
        self.started_at = time.monotonic()
        self.broker_seen = 0.0  # monotonic time the broker last answered (a fetch or a probe)
        self.broker_down_since: float | None = None  # set while it does not answer
        self.tick = time.monotonic()  # the event loop turns (set by the broker watch)
        self.undelivered: str | None = None
        self.dead_letters = DeadLetterLog()
        self._watch: asyncio.Task | None = None
        self._commits: dict[int, asyncio.Future] = {}  # per consumer: the commit that may still wait
        self.records = 0
        self.produced: dict[str, int] = {}
        self.pending_reload: RuleSet | None = None

    def stage(self, name: str) -> Stage:
        return next(st for st in self.stages if st.strategy.name == name)

    # -- what the metrics surface reads -----------------------------------------
    @property
    def assigned(self) -> set[TopicPartition]:
        return {tp for st in self.stages if st.strategy.evaluates for tp in st.assigned}

    def counters(self) -> dict:
        """This process's counts (restored figures are not this process's)."""
        total: dict = {}
        for st in self.stages:
            total = add(total, st.strategy.counters())
        return total

    def gauges(self) -> dict:
        ss = [st.strategy for st in self.stages]
        return gauges(
            [e for s in ss for e in s.evaluating_engines()],
            [e for s in ss for e in s.reading_engines()],
            sum(s.pending() for s in ss),
        )

    @property
    def ready(self) -> bool:
        return self.started and self.broker_ok and any(st.assigned for st in self.stages)

    @property
    def alive(self) -> bool:
        now = time.monotonic()
        if not self.loop_started:  # restoring a large snapshot or connecting: alive for 10 minutes
            return now - self.started_at < 600
        if any(st.task is not None and st.task.done() for st in self.stages) and not self.stopping.is_set():
            return False
        if all(now - st.last_loop < 30 for st in self.stages):
            return True
        # Held up by an unreachable broker is waiting, not wedged (a restart
        # would not bring the broker back), as long as the event loop turns.
        return self.broker_down_since is not None and now - self.tick < 30

    # -- checkpoints ----------------------------------------------------------------
    async def checkpoint(self, stage: Stage, why: str = "interval", only: set[TopicPartition] | None = None) -> None:
        """Flush outputs, then the strategy records its state (and sends it, if
        it keeps it in Kafka: flushed too), then offsets are committed. Every
        wait is bounded (KAFKA_WAIT_S): an unreachable broker postpones a
        checkpoint, it never holds the loop."""
        t = time.monotonic()
        if why == "interval" and not self.broker_ok:
            return  # nothing can be flushed or committed: the checkpoint waits for the broker
        if not await self.flush_outputs(why):  # outputs first: the state must never be ahead of them
            return
        saved = await stage.strategy.save(why, only)
        if saved is None:
            return
        if saved.sent and not await self.flush_outputs(why):
            return
        if saved.offsets:
            await self.commit_offsets(stage.consumer, saved.offsets)
        if saved.size is not None:
            self.hooks.checkpoint(time.monotonic() - t, saved.size)
            log.debug(
                "checkpoint (%s, %s): %d bytes in %.3fs", stage.strategy.name, why, saved.size, time.monotonic() - t
            )

    async def flush_outputs(self, why: str) -> bool:
        """True once Kafka has acknowledged every output so far; False if it has
        not within KAFKA_WAIT_S (the flush goes on; the caller tries later).
        Raises OutputNotDelivered if an output failed."""
        try:
            await asyncio.wait_for(asyncio.shield(self.producer.flush()), KAFKA_WAIT_S)
        except asyncio.TimeoutError:
            log.warning("checkpoint (%s) postponed: outputs not acknowledged within %.0fs", why, KAFKA_WAIT_S)
            return False
        if self.undelivered is not None:
            raise OutputNotDelivered(
                f"an output was not delivered to Kafka ({self.undelivered}); stopping "
                f"without a checkpoint so that a restart produces it again"
            )
        return True

    async def commit_offsets(self, consumer: AIOKafkaConsumer, offsets: dict) -> None:
        """Commit, waiting at most KAFKA_WAIT_S (aiokafka's commit waits for the
        group coordinator for ever). A commit still waiting is left to finish,
        not cancelled (its request may be on the wire), and none other starts
        meanwhile, so commits land in order."""
        prev = self._commits.get(id(consumer))
        if prev is not None and not prev.done():
            log.warning("offset commit skipped: the previous one still waits for the broker")
            return
        task = self._commits[id(consumer)] = asyncio.ensure_future(consumer.commit(offsets))
        task.add_done_callback(_committed)
        done, _ = await asyncio.wait({task}, timeout=KAFKA_WAIT_S)
        if not done:
            log.warning("offset commit not answered within %.0fs; state is safe in the checkpoint", KAFKA_WAIT_S)

    def delivered(self, fut: asyncio.Future) -> None:
        """Done-callback of every send: a failed one stops the process (no checkpoint passes it)."""
        if self.undelivered is None and not fut.cancelled() and fut.exception() is not None:
            self.undelivered = repr(fut.exception())
            log.critical("an output was not delivered to Kafka: %s", self.undelivered)

    # -- the broker --------------------------------------------------------------------
    @property
    def broker_ok(self) -> bool:
        return self.broker_seen > 0 and self.broker_down_since is None

    async def _watch_broker(self) -> None:
        """Fresh fetch responses say the broker answers; after BROKER_SILENCE_S
        without one, a metadata request decides. Logs when it stops and starts
        answering (aiokafka's own errors are held to one per kind per 30 s)."""
        newest, probed = 0, 0.0
        while True:
            await asyncio.sleep(0.5)
            now = self.tick = time.monotonic()
            polled = newest
            for st in self.stages:
                for tp in list(st.assigned):
                    try:
                        polled = max(polled, st.consumer.last_poll_timestamp(tp) or 0)
                    except Exception:  # revoked meanwhile
                        pass
            if polled > newest:
                newest, self.broker_seen = polled, now
            elif now - self.broker_seen > BROKER_SILENCE_S and now - probed >= BROKER_SILENCE_S:
                probed = now
                try:
                    await asyncio.wait_for(self.stages[0].consumer.topics(), BROKER_SILENCE_S)
                    self.broker_seen = time.monotonic()
                except Exception as exc:
                    if self.broker_down_since is None:
                        self.broker_down_since = self.broker_seen
                        log.error(
                            "Kafka broker not answering for %.0fs (%s): waiting for it, not ready",
                            time.monotonic() - self.broker_seen,
                            repr(exc) if str(exc) == "" else exc,
                        )
            if self.broker_down_since is not None and self.broker_seen > self.broker_down_since:
                log.warning("Kafka broker answering again after %.1fs", self.broker_seen - self.broker_down_since)
                self.broker_down_since = None

    # -- output ----------------------------------------------------------------
    async def emit(self, outs: list) -> None:
        now = time.time()
        for kind, key, value in outs:
            topic = self.output_topics[kind]
            fut = await self.producer.send(
                topic, key=key.encode(), value=json.dumps(value, separators=(",", ":")).encode()
            )
            fut.add_done_callback(self.delivered)
            self.produced[kind] = self.produced.get(kind, 0) + 1
            if kind in ("alerts", "alerts-shadow"):
                self.hooks.alert_latency(max(0.0, now - parse_ts(value["ts"]) / 1000))
                if kind == "alerts" and self.alert_sink is not None:
                    self.alert_sink.submit(value)
                if self.log_alerts:
                    log.warning(
                        "%s %s %s %s: %s",
                        kind[:-1],
                        value["status"].upper(),
                        value["rule_id"],
                        json.dumps(value["group"]),
                        value["message"],
                    )
            elif kind == "breaker-commands" and self.log_alerts:
                log.warning("breaker %s %s %s", value["action"].upper(), value["breaker"], json.dumps(value["scope"]))
            elif kind == "dead-letter":
                self.dead_letters.count(value.get("reason_code") or "unknown")
        self.dead_letters.report()

    # -- rules ---------------------------------------------------------------------
    def request_reload(self, ruleset: RuleSet) -> None:
        self.pending_reload = ruleset  # applied between turns: the swap is atomic

    def _apply_reload(self, rs: RuleSet) -> None:
        self.pending_reload = None
        for st in self.stages:
            st.strategy.apply_rules(rs)

    # -- the loop -------------------------------------------------------------------
    async def _create_internal_topics(self) -> None:
        from ..kafkatools.admin import ensure_topics  # blocking (kafka-python): in a thread

        specs = {name: spec for st in self.stages for name, spec in st.strategy.internal_topics().items()}
        if not specs:
            return
        created = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: ensure_topics(
                self.bootstrap,
                {n: s.partitions for n, s in specs.items()},
                {n: s.configs for n, s in specs.items() if s.configs},
                security=self.security,
            ),
        )
        if created:
            log.info("created internal topics %s", created)

    async def run(self) -> None:
        quiet_aiokafka()
        if self.create_topics:
            await self._create_internal_topics()
        for st in self.stages:
            st.strategy.restore()
        self.started = True
        common = dict(bootstrap_servers=self.bootstrap, **self.security)
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=5, enable_idempotence=False, client_id=self.client_id, **common
        )
        await self.producer.start()
        try:
            for st in self.stages:
                st.consumer = AIOKafkaConsumer(
                    group_id=st.group_id,
                    client_id=st.client_id,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    session_timeout_ms=self.session_timeout_ms,
                    heartbeat_interval_ms=max(500, self.session_timeout_ms // 6),
                    rebalance_timeout_ms=self.session_timeout_ms,
                    max_poll_records=5000,
                    fetch_max_wait_ms=st.strategy.fetch_max_wait_ms,
                    **common,
                )
                await st.consumer.start()
            self.broker_seen = time.monotonic()
            self._watch = asyncio.create_task(self._watch_broker())
            loops = []
            for st in self.stages:
                st.task = asyncio.create_task(self._loop(st))
                loops.append(st.task)
            self.loop_started = True
            await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self.stopping.set()
            tasks = [st.task for st in self.stages if st.task is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=20)
            if self._watch is not None:
                self._watch.cancel()
            await _stop(self.producer)
        for t in tasks:
            if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
                raise exc

    async def _loop(self, st: Stage) -> None:
        s, consumer = st.strategy, st.consumer
        consumer.subscribe(s.topics(), listener=_Listener(self, st))
        last = time.monotonic()
        try:
            while not self.stopping.is_set():
                st.last_loop = time.monotonic()
                if self.pending_reload is not None:
                    self._apply_reload(self.pending_reload)
                try:
                    batch = await consumer.getmany(timeout_ms=s.poll_ms(), max_records=5000)
                except Exception as exc:
                    log.error("%s: fetch failed: %s", s.name, exc)
                    await asyncio.sleep(1)
                    continue
                t = time.perf_counter()
                async with s.lock:
                    turn = await s.process(batch)
                    if turn is not None:
                        outs, n = turn
                        if outs:
                            await self.emit(outs)
                        if s.evaluates:
                            self.records += n
                            self.hooks.batch(time.perf_counter() - t, n)
                self.dead_letters.report()
                if time.monotonic() - last >= (s.checkpoint_interval_s or 0):
                    await self.checkpoint(st)
                    last = time.monotonic()
        finally:
            try:
                if st.assigned:
                    await asyncio.wait_for(self.checkpoint(st, "shutdown"), timeout=5)
            except Exception as exc:
                log.error("%s: final checkpoint failed: %s", s.name, exc)
            await _stop(consumer)


def _committed(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:  # e.g. during a rebalance
        log.warning("offset commit failed (%s); state is safe in the checkpoint", task.exception())


async def _stop(client: Any) -> None:
    if client is not None:
        try:
            await asyncio.wait_for(client.stop(), timeout=3)
        except Exception as exc:
            log.warning("closing %s: %s", type(client).__name__, exc)
