"""The checkpoint store: shard checkpoints in a compacted Kafka topic (Kafka
Streams keeps a state store's changelog the same way), so a shard can move
between workers.

One partition per shard. A snapshot is cut into chunks (a large state
exceeds a record's size limit), each with a header `snapshot id:i:n`. Chunks
are keyed `shard-N/SLOT/i` with two alternating slots, so on a compacted
topic a write that crashes half-way never destroys the previous complete
snapshot. Reading takes the newest complete one.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

log = logging.getLogger("anomalyd.state")

CHUNK = 256 * 1024


class CheckpointStore:
    """Writes and reads the newest complete checkpoint of each shard."""

    producer: AIOKafkaProducer  # the runtime's, attached before the first write

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        security: dict | None = None,
        client_id: str = "anomalyd",
        read_timeout_s: float = 60.0,
    ):
        self.bootstrap = bootstrap
        self.topic = topic
        self.security = security or {}
        self.client_id = client_id
        self.read_timeout_s = read_timeout_s
        self.slot: dict[int, int] = {}

    def attach(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def write(self, index: int, data: bytes) -> None:
        """Send the chunks (the caller flushes the producer before committing)."""
        sid = time.time_ns()
        n = max(1, -(-len(data) // CHUNK))
        slot = self.slot[index] = 1 - self.slot.get(index, 1)
        for i in range(n):
            await self.producer.send(
                self.topic,
                value=data[i * CHUNK : (i + 1) * CHUNK],
                partition=index,
                key=f"shard-{index}/{slot}/{i}".encode(),
                headers=[("snap", f"{sid}:{i}:{n}".encode())],
            )

    async def read(self, index: int) -> bytes | None:
        """The newest complete snapshot of shard `index`, or None."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-state",
            enable_auto_commit=False,
            group_id=None,
            **self.security,
        )
        await consumer.start()
        tp = TopicPartition(self.topic, index)
        prefix = f"shard-{index}/".encode()
        parts: dict[int, dict[int, bytes]] = {}
        best: tuple[int, bytes] | None = None
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + self.read_timeout_s
            while time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=300, max_records=1000)
                for rec in batch.get(tp, []):
                    if not rec.key or not rec.key.startswith(prefix):
                        continue
                    head = dict(rec.headers or ()).get("snap")
                    if head is None:
                        continue
                    sid, i, n = (int(x) for x in head.decode().split(":"))
                    got = parts.setdefault(sid, {})
                    got[i] = rec.value
                    if len(got) == n:
                        if best is None or sid > best[0]:
                            best = (sid, b"".join(got[j] for j in range(n)))
                        parts = {s: c for s, c in parts.items() if s > sid}
                hw = consumer.highwater(tp)
                if hw is not None and await consumer.position(tp) >= hw:
                    break
            else:
                log.error("reading shard %d state from %s timed out", index, self.topic)
        finally:
            try:
                await asyncio.wait_for(consumer.stop(), timeout=3)
            except Exception:
                pass
        return best[1] if best else None
