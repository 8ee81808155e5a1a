"""The events as msgspec Structs: what the decoder's fast path builds.

The pydantic models in events.py stay the one declaration of an event (JSON
Schema, rule checking and the dead letter's precise reasons come from them);
the Structs are derived from them here, type for type and bound for bound.
msgspec validates a record about four times faster than pydantic-core, and
refuses NaN and Infinity in its parser, ignored fields included, so no text
scan is needed (bench/README.md, "Issue 15: decoding").
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .events import EVENT_MODELS, MAX_STR
from .timeutil import parse_ts


class EventStruct(msgspec.Struct, gc=False):
    """An event as the engine reads it: attributes named as in the contract,
    `ts` in epoch milliseconds once built.

    gc=False: an event holds only strings, numbers and flat containers of
    them, so it can be in no reference cycle; not tracking it halves the cost
    of a decode while events are kept (the reorder buffer)."""

    if TYPE_CHECKING:  # the fields every event has (struct_of declares them)
        ts: int
        event_id: str
        attrs: dict[str, str | int | float] | None

    def __post_init__(self) -> None:
        # An RFC 3339 `ts` is parsed here, after msgspec has checked its type;
        # a ValueError becomes the record's ValidationError.
        ts: Any = self.ts
        if type(ts) is str:
            self.ts = parse_ts(ts)


_BOUNDS = {at.Gt: "gt", at.Ge: "ge", at.Lt: "lt", at.Le: "le", at.MinLen: "min_length", at.MaxLen: "max_length"}


def _metadata(items: Any) -> list[Any]:
    """annotated_types bounds, whether given bare or inside a pydantic Field."""
    out = []
    for m in items:
        out.extend(_metadata(m.metadata) if isinstance(m, FieldInfo) else [m] if type(m) in _BOUNDS else [])
    return out


def _bounded(base: Any, meta: list[Any]) -> Any:
    kw = {_BOUNDS[type(m)]: getattr(m, _BOUNDS[type(m)]) for m in meta}
    if base is str:  # the models' str_max_length bounds every string
        kw["max_length"] = min(kw.get("max_length", MAX_STR), MAX_STR)
    return Annotated[base, msgspec.Meta(**kw)] if kw else base


def msgspec_type(ann: Any, meta: list[Any] | None = None) -> Any:
    """The msgspec type of a (strict) pydantic annotation, bounds kept."""
    meta = meta or []
    origin = get_origin(ann)
    if origin is Annotated:
        base, *extra = get_args(ann)
        return msgspec_type(base, meta + _metadata(extra))
    if origin in (Union, types.UnionType):
        return Union[tuple(msgspec_type(a, [] if a is type(None) else meta) for a in get_args(ann))]  # noqa: UP007
    if origin is Literal or ann is type(None):
        return ann
    if origin is list:
        (item,) = get_args(ann)
        return _bounded(list[msgspec_type(item)], meta)  # type: ignore[misc]
    if origin is dict:
        k, v = get_args(ann)
        return _bounded(dict[msgspec_type(k), msgspec_type(v)], meta)  # type: ignore[misc]
    if ann in (str, int, float, bool):
        return _bounded(ann, meta)
    raise TypeError(f"no msgspec type for {ann!r}")


def struct_of(model: type[BaseModel]) -> type[EventStruct]:
    """The model's fields, required ones first (so that a Struct can be built
    from its values in order: io/records.py's routed events)."""
    required: list[tuple[Any, ...]] = []
    optional: list[tuple[Any, ...]] = []
    for name, info in model.model_fields.items():
        t = msgspec_type(info.annotation, _metadata(info.metadata))
        if info.default is PydanticUndefined:
            required.append((name, t))
        else:
            optional.append((name, t, info.default))
    return cast(type[EventStruct], msgspec.defstruct(model.__name__, required + optional, bases=(EventStruct,)))


EVENT_STRUCTS: dict[str, type[EventStruct]] = {t: struct_of(m) for t, m in EVENT_MODELS.items()}

# A replay line `{"topic": T, "value": {...}}`: `topic` is the union's tag.
TOPIC_OF = {
    msgspec.defstruct(f"Envelope_{t}", [("value", s)], tag_field="topic", tag=t): t for t, s in EVENT_STRUCTS.items()
}
LINE_DECODER = msgspec.json.Decoder(Union[tuple(TOPIC_OF)])  # noqa: UP007
VALUE_DECODERS = {t: msgspec.json.Decoder(s) for t, s in EVENT_STRUCTS.items()}
