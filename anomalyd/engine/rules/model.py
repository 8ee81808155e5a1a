"""The rule model (contract section 3): one pydantic class per rule type.

These classes are also the source of `schemas/rules.schema.json`, which gives
analysts completion and checking in their editor.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..timeutil import parse_duration

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
Scalar = Union[bool, int, float, str]
DurationText = Annotated[
    str,
    Field(
        pattern=r"^(\d+(ms|s|m|h|d))+$", description="A duration: 500ms, 30s, 10m, 2h, 1d, or compounds such as 1h30m"
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _duration(v: Any) -> Any:
    if isinstance(v, str):
        parse_duration(v)  # raises ValueError with a helpful text
    return v


class Condition(_Strict):
    """`field op value`, `expr op value`, or a boolean `expr` alone.
    With `exists`, value true (default) or false."""

    added_keys: ClassVar[dict[str, Any]] = {"expr": None}

    field: str | None = Field(default=None, description="An event field, or attrs.NAME")
    expr: str | None = Field(
        default=None,
        description="A CEL expression over the event: true/false alone, or a value compared with op and value",
    )
    op: Op | None = None
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> "Condition":
        if (self.field is None) == (self.expr is None):
            raise ValueError("a condition takes either field or expr")
        if self.op is None:
            if self.field is not None:
                raise ValueError("a field condition needs op (and value)")
            if self.value is not None:
                raise ValueError("value needs an op")
            return self
        if self.expr is not None and self.op == "exists":
            raise ValueError("op 'exists' takes a field; for an expression use has(...)")
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list):
                raise ValueError(f"op {self.op!r} needs a list value, e.g. [a, b]")
        elif self.op == "exists":
            if self.value is not None and not isinstance(self.value, bool):
                raise ValueError("op 'exists' takes value true or false (or none)")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a single value")
        elif self.op in ("<", "<=", ">", ">=") and (
            isinstance(self.value, bool) or not isinstance(self.value, (int, float))
        ):
            raise ValueError(f"op {self.op!r} needs a number value")
        return self


def _canon(model: BaseModel) -> Any:
    """The model as plain values for hashing, new keys at their defaults left out."""
    out = {}
    added = getattr(model, "added_keys", {})
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        v = getattr(model, name)
        if key in added and v == added[key]:
            continue
        if isinstance(v, BaseModel):
            v = _canon(v)
        elif isinstance(v, list):
            v = [_canon(x) if isinstance(x, BaseModel) else x for x in v]
        out[key] = v
    return out


class Breaker(_Strict):
    """Circuit-breaker command emitted while the rule's alert fires."""

    action: str = Field(min_length=1, description="Free text the downstream system understands, e.g. pause_sales")
    scope: list[str] = Field(min_length=1, description="Which group_by fields the command targets")
    ttl: DurationText = Field(description="The command lapses by itself after this")

    _check_ttl = field_validator("ttl", mode="before")(classmethod(lambda cls, v: _duration(v)))


Source = Literal["orders", "inventory", "payments", "complaints"]


class RuleCore(_Strict):
    """What every rule has, whatever it reads (one source, two, or alerts)."""

    id: str = Field(pattern=r"^[a-z0-9_-]+$", description="Unique across all files")
    description: str = ""
    group_by: list[str] = Field(default_factory=list, description="No group_by = one global group")
    severity: Literal["P0", "P1", "P2", "P3"] = "P2"
    labels: dict[str, str] = Field(default_factory=dict)
    message: str | None = Field(default=None, description="Template: {group fields}, {value}, {threshold}, details")
    cooldown: DurationText = Field(
        default="0s",
        description="Once firing, the alert stays firing until its condition has been false for this long: no repeat alert for the same group while firing",
    )
    enabled: bool = True
    mode: Literal["live", "shadow"] = Field(
        default="live", description="shadow: alerts go to the shadow topic, never breaker commands"
    )
    owner: str | None = None
    runbook: str | None = None
    tags: list[str] = Field(default_factory=list)
    breaker: Breaker | None = None
    for_: DurationText = Field(
        default="0s",
        alias="for",
        description="The condition must hold this long of event time before the alert fires (pending until then)",
    )
    resolved_message: str | None = Field(
        default=None, description="Template of the resolved record's message (default: the type's own wording)"
    )

    @field_validator("cooldown", "window", "for_", "offset", "within", mode="before", check_fields=False)
    @classmethod
    def _durations(cls, v: Any) -> Any:
        return _duration(v)

    # Keys added after rules were first deployed, with their defaults: left
    # out of the version hash while at the default, so that an unchanged rule
    # keeps its version (and its state in a snapshot) across the upgrade.
    added_keys: ClassVar[dict[str, Any]] = {"for": "0s", "resolved_message": None}

    @property
    def version(self) -> str:
        """Hash of the rule's definition: unchanged rules keep their state on reload."""
        canon = json.dumps(_canon(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def ms(self, name: str) -> int:
        return parse_duration(getattr(self, name))

    def sources(self) -> list[str]:
        """The input sources whose events this rule reads."""
        raise NotImplementedError

    if TYPE_CHECKING:  # a field of one-source rules, a property of the others

        @property
        def source(self) -> str: ...


class RuleBase(RuleCore):
    """A rule over the events of one source."""

    source: Source
    where: list[Condition] = Field(default_factory=list, description="Every condition must hold")

    def sources(self) -> list[str]:
        return [self.source]


class ValueRule(RuleBase):
    """A rule that reads one value per event: an event `field` or an `expr`."""

    added_keys: ClassVar[dict[str, Any]] = {**RuleBase.added_keys, "expr": None, "field": None}

    field: str | None = Field(default=None, description="The event field read (or attrs.NAME)")
    expr: str | None = Field(default=None, description="A CEL expression over the event, instead of field")

    @model_validator(mode="after")
    def _field_or_expr(self) -> "ValueRule":
        if self.field is not None and self.expr is not None:
            raise ValueError("give field or expr, not both")
        if self.field is None and self.expr is None and self.value_required:
            raise ValueError("missing required key 'field' (or 'expr')")
        return self

    value_required: ClassVar[bool] = True  # surge counts events by default: no field needed
