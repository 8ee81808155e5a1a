"""The rule model (contract section 3): one pydantic class per rule type.

These classes are also the source of `schemas/rules.schema.json`, which gives
analysts completion and checking in their editor.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..timeutil import parse_duration

Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
Scalar = Union[bool, int, float, str]
DurationText = Annotated[
    str, Field(pattern=r"^(\d+(ms|s|m|h|d))+$", description="A duration: 500ms, 30s, 10m, 2h, 1d, or compounds such as 1h30m")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _duration(v: Any) -> Any:
    if isinstance(v, str):
        parse_duration(v)  # raises ValueError with a helpful text
    return v


class Condition(_Strict):
    """`field op value`. With `exists`, value true (default) or false."""

    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> "Condition":
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


class Breaker(_Strict):
    """Circuit-breaker command emitted while the rule's alert fires."""

    action: str = Field(min_length=1, description="Free text the downstream system understands, e.g. pause_sales")
    scope: list[str] = Field(min_length=1, description="Which group_by fields the command targets")
    ttl: DurationText = Field(description="The command lapses by itself after this")

    _check_ttl = field_validator("ttl", mode="before")(classmethod(lambda cls, v: _duration(v)))


class RuleBase(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_-]+$", description="Unique across all files")
    description: str = ""
    source: Literal["orders", "inventory", "payments", "complaints"]
    group_by: list[str] = Field(default_factory=list, description="No group_by = one global group")
    where: list[Condition] = Field(default_factory=list, description="Every condition must hold")
    severity: Literal["P0", "P1", "P2", "P3"] = "P2"
    labels: dict[str, str] = Field(default_factory=dict)
    message: str | None = Field(default=None, description="Template: {group fields}, {value}, {threshold}, details")
    cooldown: DurationText = Field(
        default="0s",
        description="Once firing, the alert stays firing until its condition has been false for this long: no repeat alert for the same group while firing",
    )
    enabled: bool = True
    mode: Literal["live", "shadow"] = Field(default="live", description="shadow: alerts go to the shadow topic, never breaker commands")
    owner: str | None = None
    runbook: str | None = None
    tags: list[str] = Field(default_factory=list)
    breaker: Breaker | None = None

    @field_validator("cooldown", "window", mode="before", check_fields=False)
    @classmethod
    def _durations(cls, v: Any) -> Any:
        return _duration(v)

    @property
    def version(self) -> str:
        """Hash of the rule's definition: unchanged rules keep their state on reload."""
        canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def ms(self, name: str) -> int:
        return parse_duration(getattr(self, name))


class ThresholdRule(RuleBase):
    type: Literal["threshold"]
    field: str
    op: CompareOp
    value: float | int | str | bool


class ChangeRule(RuleBase):
    type: Literal["change"]
    field: str
    pct: float = Field(gt=0, description="Fires when the value differs from the baseline by more than this percent")
    direction: Literal["up", "down", "both"] = "both"
    baseline: Literal["previous", "mean"] = "previous"
    window: DurationText | None = Field(default=None, description="Required with baseline: mean")

    @model_validator(mode="after")
    def _mean_needs_window(self) -> "ChangeRule":
        if self.baseline == "mean" and self.window is None:
            raise ValueError("baseline 'mean' needs a window")
        return self


class SurgeRule(RuleBase):
    type: Literal["surge"]
    window: DurationText
    pct: float = Field(gt=0)
    min_count: int = Field(default=1, ge=1)


class RatioRule(RuleBase):
    type: Literal["ratio"]
    window: DurationText
    numerator: list[Condition] = Field(min_length=1)
    op: CompareOp
    value: float
    min_count: int = Field(default=1, ge=1)


class CountRule(RuleBase):
    type: Literal["count"]
    window: DurationText
    op: CompareOp
    value: int = Field(ge=0)


class AbsenceRule(RuleBase):
    type: Literal["absence"]
    window: DurationText


RULE_TYPES: dict[str, type[RuleBase]] = {
    "threshold": ThresholdRule,
    "change": ChangeRule,
    "surge": SurgeRule,
    "ratio": RatioRule,
    "count": CountRule,
    "absence": AbsenceRule,
}

AnyRule = Annotated[
    Union[ThresholdRule, ChangeRule, SurgeRule, RatioRule, CountRule, AbsenceRule],
    Field(discriminator="type"),
]


class RuleFile(BaseModel):
    """A rules file: a top-level `rules:` list."""

    model_config = ConfigDict(extra="forbid", title="anomalyd rules file")
    rules: list[AnyRule]
