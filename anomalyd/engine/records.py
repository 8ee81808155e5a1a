"""Output records (contract section 4) and the dead-letter record."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GroupValue = str | int | float


class Ack(BaseModel):
    """An operator's acknowledgement of a firing alert (an `ack` operator action)."""

    model_config = ConfigDict(extra="forbid")

    by: str
    reason: str | None = None
    ts: str = Field(description="Event time of the ack (RFC 3339)")


class HoldInfo(BaseModel):
    """The operator's hold on the alert's breaker scope when the record was made."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["hold_closed", "hold_open"]
    until: str = Field(description="End of the hold (RFC 3339)")
    by: str
    reason: str


class Alert(BaseModel):
    """One alert state change: `firing` or `resolved`. Key on `alerts`: fingerprint."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(description="Deterministic id of this state change: same input, same id")
    fingerprint: str = Field(description="Stable id of (rule, group)")
    rule_id: str
    rule_version: str = Field(description="Hash of the rule's definition")
    severity: Literal["P0", "P1", "P2", "P3"]
    status: Literal["firing", "resolved"]
    source: str
    group: dict[str, GroupValue | None]
    value: float | int | None = Field(description="Observed value at the state change")
    threshold: float | int | None = Field(description="The bar the value was compared with")
    message: str
    labels: dict[str, str]
    started_at: str = Field(description="Event time the episode started (RFC 3339)")
    ts: str = Field(description="Event time of this state change (RFC 3339)")
    evidence: list[str] = Field(description="Ids of events that led to this state")
    details: dict[str, float | int | str | None] = Field(default_factory=dict, description="Type-specific figures")
    shadow: bool = Field(default=False, description="True for rules in shadow mode")
    runbook: str | None = None
    owner: str | None = None
    ack: Ack | None = Field(default=None, description="Present once an operator acknowledged the episode")
    hold: HoldInfo | None = Field(default=None, description="Present while an operator holds the breaker's scope")


class BreakerCommand(BaseModel):
    """A circuit-breaker command. Key on `breaker-commands`: the scope string."""

    model_config = ConfigDict(extra="forbid")

    command_id: str
    action: Literal["open", "close"]
    breaker: str = Field(description="The rule's breaker action, e.g. pause_sales")
    scope: dict[str, GroupValue | None]
    rule_id: str
    alert_id: str
    reason: str
    ts: str
    expires_at: str
    by: str | None = Field(default=None, description="The operator, on commands an operator action caused")


class DeadLetter(BaseModel):
    """A rejected input record. Key on `dead-letter`: the source topic."""

    model_config = ConfigDict(extra="forbid")

    source_topic: str | None
    partition: int | None = None
    offset: int | None = None
    line: int | None = Field(default=None, description="Line number in a replayed file")
    key: str | None = None
    original: str = Field(description="The record's original text (undecodable bytes replaced)")
    reason: str = Field(description="One line: why it was rejected")
    reason_code: str = Field(description="Stable category, also the metric label")
