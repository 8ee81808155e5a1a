"""The records the runtime keeps and sends, as named types with explicit
encode / decode.

- :class:`Origin`: where an input record was read, `(topic, partition,
  offset)`. A record on the repartition topic carries its origin in the
  `origin` header.
- :class:`BufferedRecord`: a validated event waiting in a reorder buffer,
  with what a snapshot needs to rebuild it.
- :class:`WatermarkEntry` / :class:`Watermark`: the progress of one input
  partition, as the router reports it to every shard (Kafka Streams' and
  Flink's word: the event time below which a partition sends nothing more).

The router validates each input record once; what it sends on the
repartition topic is the validated event itself (`encode_event`), flagged
by the `validated` header, and a shard rebuilds it without validating again
(`decode_event`).
"""

from __future__ import annotations

import json
import marshal
import struct
from typing import Any, NamedTuple

from msgspec.structs import astuple

from ..engine.actions import OPERATOR, OperatorAction
from ..engine.structs import EVENT_STRUCTS, EventStruct

# A named record from its fields in order, without the Python-level __new__
# NamedTuple adds (a third of the runtime's own cost per input record).
new_record = tuple.__new__

ORIGIN_HEADER = "origin"
VALIDATED_HEADER = "validated"
WATERMARK_KEY = b"~wm"  # the key of a watermark record on the repartition topic

_ORIGIN = struct.Struct(">iq")  # partition, offset; the topic's name follows


class Origin(NamedTuple):
    """Where an input record was read."""

    topic: str
    partition: int
    offset: int

    @property
    def part(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def encode(self) -> bytes:
        return _ORIGIN.pack(self.partition, self.offset) + self.topic.encode()

    @classmethod
    def decode(cls, data: bytes) -> Origin:
        partition, offset = _ORIGIN.unpack_from(data)
        return cls(data[_ORIGIN.size :].decode(), partition, offset)


class BufferedRecord(NamedTuple):
    """A validated event in a reorder buffer; `raw` is what it was decoded
    from (the input record's value, or a routed copy's), kept for snapshots."""

    source: str
    event: EventStruct
    origin: Origin
    key: str | None
    raw: bytes

    def encode(self) -> tuple:
        """The snapshot form: plain values (marshal, no pickle)."""
        o = self.origin
        return (self.source, o.topic, o.partition, o.offset, self.key, self.raw)

    @staticmethod
    def fields(data: tuple | list) -> tuple[str, Origin, str | None, bytes]:
        """(source, origin, key, raw) of an encoded record; a 5-long one
        (shard snapshots before 0.x: no key) is read as well."""
        if len(data) == 5:
            source, topic, partition, offset, raw = data
            key = None
        else:
            source, topic, partition, offset, key, raw = data
        return source, Origin(topic, partition, offset), key, raw


class WatermarkEntry(NamedTuple):
    """One input partition's progress, as of when the router sent it."""

    topic: str
    partition: int
    next_offset: int
    max_ts: int | None  # largest ts so far
    min_ts: int | None  # smallest ts since the previous watermark
    caught_up: bool

    @property
    def part(self) -> tuple[str, int]:
        return (self.topic, self.partition)


class Watermark:
    """The value of a watermark record: a JSON list of entries."""

    @staticmethod
    def encode(entries: list[WatermarkEntry]) -> bytes:
        return json.dumps([list(e) for e in entries], separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> list[WatermarkEntry]:
        return [WatermarkEntry(*e) for e in json.loads(data)]


def encode_event(ev: Any) -> bytes:
    """A validated event, for a shard (`decode_event`): its field values in
    order, as marshal (ts already in epoch milliseconds); an operator action
    (a pydantic model) as a dict of its fields."""
    if type(ev) is OperatorAction:
        return marshal.dumps(ev.__dict__)
    return marshal.dumps(astuple(ev))


def decode_event(source: str, data: bytes) -> Any:  # an EventStruct, or an OperatorAction
    """An event the router validated (`encode_event`), rebuilt without
    validating again. The previous release sent, and checkpointed, a dict of
    the fields: such a record still reads."""
    values = marshal.loads(data)
    if source == OPERATOR:
        return OperatorAction.model_construct(**values)
    cls = EVENT_STRUCTS[source]
    return cls(**values) if type(values) is dict else cls(*values)


def rebuild(
    engine: Any, source: str, origin: Origin, raw: bytes, validated: bool, key: str | None = None
) -> BufferedRecord | None:
    """A buffered record from what was read or saved: an event the router
    validated is rebuilt as it is; anything else (an input record restored
    from a direct-mode snapshot, a record of the previous release) is
    validated by the engine's decoder (None: refused)."""
    if validated:
        return BufferedRecord(source, decode_event(source, raw), origin, key, raw)
    ev, _ = engine.decode_record(source, raw, origin.topic, origin.partition, origin.offset, key)
    return None if ev is None else BufferedRecord(source, ev, origin, key, raw)


def refill(buffer: Any, engine: Any, items: list, validated: bool = False) -> None:
    """Push a snapshot's buffered records (BufferedRecord.encode) back into a reorder buffer."""
    for item in items:
        source, origin, key, raw = BufferedRecord.fields(item)
        rec = rebuild(engine, source, origin, raw, validated, key)
        if rec is not None:
            buffer.push(origin.part, rec.event.ts, rec)


def headers_of(rec: Any) -> dict[str, bytes]:
    return dict(rec.headers or ())
