"""Operator actions (topic `operator-actions`, an extension of the contract):
the record, and its strict decoding into an event the engine orders in event
time like any other. Kept apart from decode.py: what an action means is the
lifecycle's (Lifecycle.operate); here only its shape is checked."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError

from .decode import Rejected
from .events import MAX_STR, Timestamp

OPERATOR = "operator-actions"  # the source name (its topic's name is a setting)
ACTIONS = ("close", "hold_closed", "hold_open", "release", "ack")
NEEDS_REASON = ("close", "hold_closed", "hold_open")
HOLDS = ("hold_closed", "hold_open")

ScopeValue = StrictStr | StrictInt | StrictFloat


class OperatorAction(BaseModel):
    """What an operator did to a breaker or an alert. Key on `operator-actions`: the rule id."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, str_max_length=MAX_STR)

    action: Literal["close", "hold_closed", "hold_open", "release", "ack"] = Field(
        description="close: close the breaker now; hold_closed: close it and keep it closed until `until`; "
        "hold_open: keep it open until `until` whatever the alerts do; release: end a hold; "
        "ack: acknowledge the firing alerts of the scope"
    )
    rule_id: Annotated[str, Field(min_length=1)]
    scope: dict[str, ScopeValue] = Field(
        max_length=16,
        description="The breaker's scope fields and values (ack: any of the alert's group fields)",
    )
    until: Timestamp | None = Field(default=None, description="End of a hold (required by hold_closed and hold_open)")
    by: Annotated[str, Field(min_length=1, description="Who acted (a user name)")]
    reason: str | None = Field(default=None, description="Why (required by close and the holds)")
    ts: Timestamp
    action_id: str | None = Field(default=None, description="Optional id of the action; echoed in logs")

    @property
    def event_id(self) -> str:  # evidence lists and logs name events by id
        return self.action_id or f"{self.action}:{self.rule_id}:{self.ts}"


_ADAPTER: TypeAdapter[OperatorAction] = TypeAdapter(OperatorAction)


def _reason(err: ValidationError) -> Rejected:
    e = err.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "constrained-")))
    if e["type"] == "missing":
        return Rejected("missing_field", f"missing required field {loc}")
    if e["type"] == "extra_forbidden":
        known = ", ".join(OperatorAction.model_fields)
        return Rejected("invalid_field", f"unknown field {loc} (an operator action has {known})")
    given = json.dumps(e.get("input"), default=str)
    given = given if len(given) <= 40 else given[:37] + "..."
    msg = e["msg"].removeprefix("Value error, ")
    return Rejected("invalid_field", f"{loc}: {msg}, got {given}" if loc else msg)


def check(act: OperatorAction) -> OperatorAction:
    """What the fields demand of each other."""
    if act.action in NEEDS_REASON and not (act.reason or "").strip():
        raise Rejected("missing_field", f"{act.action} needs a reason")
    if act.action in HOLDS:
        if act.until is None:
            raise Rejected("missing_field", f"{act.action} needs until (the end of the hold)")
        if act.until <= act.ts:  # type: ignore[operator]  # both epoch ms once validated
            raise Rejected("invalid_field", "until must be later than ts")
    elif act.until is not None:
        raise Rejected("invalid_field", f"until is only for hold_closed and hold_open, not {act.action}")
    if not act.scope and act.action != "ack":
        raise Rejected("invalid_field", "scope must name the breaker's scope fields")
    return act


def decode_action(raw: str | bytes) -> OperatorAction:
    """One record value of the operator-actions topic. Raises Rejected."""
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise Rejected("invalid_json", f"invalid JSON: {exc}") from None
    return decode_action_obj(obj)


def decode_action_obj(obj: Any) -> OperatorAction:
    if not isinstance(obj, dict):
        raise Rejected("not_object", f"not a JSON object (got {type(obj).__name__})")
    try:
        # JSON's own strictness (RFC 3339 strings for ts) needs validate_json.
        return check(_ADAPTER.validate_json(json.dumps(obj)))
    except ValidationError as err:
        raise _reason(err) from None


def decode_action_line(line: str | bytes) -> OperatorAction | None:
    """A replay line `{"topic": "operator-actions", "value": {...}}` -> the
    action; None when the line is not for this topic. Raises Rejected."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("topic") != OPERATOR:
        return None
    value = obj.get("value", obj.get("payload"))
    return decode_action(value) if isinstance(value, str) else decode_action_obj(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")
