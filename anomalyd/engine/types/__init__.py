"""The rule types: one module each, registered here once.

A type's module declares its pydantic model (MODEL), its runner (RUNNER) and
the message details it offers (DETAILS); the runner declares its default
resolved wording, its own state for snapshots (dump_state / load_state) and
the figures it reads. Everything else (the loader, the schema, the engine,
snapshots, `rules list`) reads this registry.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field

from ..rules.model import RuleCore
from . import absence, aggregate, change, correlate, count, ratio, sequence, surge, threshold
from .base import EngineConfig, Runner

_MODULES = (threshold, change, surge, ratio, count, absence, aggregate, sequence, correlate)

RULE_TYPES: dict[str, type[RuleCore]] = {m.MODEL.model_fields["type"].annotation.__args__[0]: m.MODEL for m in _MODULES}
RUNNERS: dict[str, type[Runner]] = {name: m.RUNNER for name, m in zip(RULE_TYPES, _MODULES, strict=True)}
DETAILS: dict[str, set[str]] = {name: set(m.DETAILS) for name, m in zip(RULE_TYPES, _MODULES, strict=True)}

AnyRule = Annotated[Union[tuple(m.MODEL for m in _MODULES)], Field(discriminator="type")]  # type: ignore[valid-type]


class RuleFile(BaseModel):
    """A rules file: a top-level `rules:` list."""

    model_config = ConfigDict(extra="forbid", title="anomalyd rules file")
    rules: list[AnyRule]  # type: ignore[valid-type]


def runner_for(rule: RuleCore, config: EngineConfig, wake=None) -> Runner:
    return RUNNERS[rule.type](rule, config, wake)  # type: ignore[attr-defined]


__all__ = ["EngineConfig", "Runner", "runner_for", "RUNNERS", "RULE_TYPES", "DETAILS", "AnyRule", "RuleFile"]
