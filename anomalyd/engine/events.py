"""Input event models (contract section 2) and their strict decoding.

Validation is strict as JSON has it: no coercion from strings, booleans are
not numbers, NaN/Infinity rejected. `ts` is normalised to epoch milliseconds
at validation time so the rest of the engine handles one integer type.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from .timeutil import MAX_TS_MS, parse_ts

SOURCES = ("orders", "inventory", "payments", "complaints")
MAX_STR = 1024  # characters in any string of an event
MAX_ITEMS = 64  # entries in `attrs`, items in `promo_codes`

# Epoch milliseconds are checked by pydantic-core alone (no Python call per
# event); only RFC 3339 strings go through parse_ts.
Timestamp = Annotated[
    Union[
        Annotated[StrictInt, Field(ge=0, le=MAX_TS_MS)],
        Annotated[StrictStr, AfterValidator(parse_ts)],
    ],
    Field(description="Event time: RFC 3339 with offset, or epoch milliseconds (1970..9999)"),
]
# Strict float accepts JSON integers but not booleans, strings or NaN.
Number = float
AttrValue = Union[StrictStr, StrictInt, StrictFloat]


class Event(BaseModel):
    """Fields every event carries."""

    # Every string (ids, group keys, attrs values, promo codes) is bounded: an
    # unbounded one would become a group key held in memory, and an alert or
    # dead letter larger than Kafka's 1 MB record limit (found by bench_fuzz:
    # a 400 kB sku crashed the worker on producing its alert).
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, str_max_length=MAX_STR)

    event_id: Annotated[str, Field(min_length=1, description="Unique id of the event")]
    ts: Timestamp
    attrs: dict[str, AttrValue] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Free-form string or number values; rules read them as attrs.NAME",
    )


class OrderEvent(Event):
    """An order event (topic `orders`)."""

    order_id: str
    sku: str
    quantity: Annotated[int, Field(gt=0)]
    unit_price: Annotated[Number, Field(ge=0)]
    status: Literal["created", "paid", "cancelled", "refunded"]
    currency: str = "CNY"
    merchant_id: str | None = None
    region: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    promo_codes: Annotated[list[str], Field(max_length=MAX_ITEMS)] | None = None


class InventoryEvent(Event):
    """An inventory event (topic `inventory`). `available` may be negative."""

    sku: str
    available: int
    warehouse: str | None = None
    reserved: Annotated[int, Field(ge=0)] | None = None
    delta: int | None = None
    reason: str | None = None


class PaymentEvent(Event):
    """A payment event (topic `payments`)."""

    payment_id: str
    order_id: str
    amount: Annotated[Number, Field(ge=0)]
    status: Literal["succeeded", "failed", "pending", "refunded"]
    currency: str | None = None
    method: str | None = None
    error_code: str | None = None
    merchant_id: str | None = None
    region: str | None = None


class ComplaintEvent(Event):
    """A customer-complaint ticket event (topic `complaints`)."""

    ticket_id: str
    category: str
    sku: str | None = None
    order_id: str | None = None
    merchant_id: str | None = None
    region: str | None = None
    channel: str | None = None


EVENT_MODELS: dict[str, type[Event]] = {
    "orders": OrderEvent,
    "inventory": InventoryEvent,
    "payments": PaymentEvent,
    "complaints": ComplaintEvent,
}


def _kind(annotation: Any) -> tuple[str, tuple | None]:
    """Classify a field annotation for rule checking: number/string/list/enum."""
    is_union = get_origin(annotation) in (Union, types.UnionType)
    args = [a for a in get_args(annotation) if a is not type(None)] if is_union else [annotation]
    kinds: set[str] = set()
    choices: tuple | None = None
    for a in args:
        while get_origin(a) is Annotated:
            a = get_args(a)[0]
        if get_origin(a) in (Union, types.UnionType):
            kinds |= {_kind(a)[0]}
        elif get_origin(a) is Literal:
            kinds.add("string")
            choices = get_args(a)
        elif get_origin(a) is list:
            kinds.add("list")
        elif a in (int, float):
            kinds.add("number")
        elif a is str:
            kinds.add("string")
        elif get_origin(a) is dict:
            kinds.add("object")
    return ("/".join(sorted(kinds)) or "any"), choices


def field_kinds(source: str) -> dict[str, tuple[str, tuple | None]]:
    """{field name: (kind, allowed literal values or None)} for a source."""
    model = EVENT_MODELS[source]
    out = {}
    for name, info in model.model_fields.items():
        if name == "attrs":
            continue
        out[name] = ("number", None) if name == "ts" else _kind(info.annotation)
    return out
