"""One module per rule type; `runner_for` picks the class for a rule."""

from __future__ import annotations

from ..rules.model import RuleBase
from .absence import AbsenceRunner
from .base import EngineConfig, Runner
from .change import ChangeRunner
from .count import CountRunner
from .ratio import RatioRunner
from .surge import SurgeRunner
from .threshold import ThresholdRunner

RUNNERS: dict[str, type[Runner]] = {
    "threshold": ThresholdRunner,
    "change": ChangeRunner,
    "surge": SurgeRunner,
    "ratio": RatioRunner,
    "count": CountRunner,
    "absence": AbsenceRunner,
}


def runner_for(rule: RuleBase, config: EngineConfig, wake=None) -> Runner:
    return RUNNERS[rule.type](rule, config, wake)  # type: ignore[attr-defined]


__all__ = ["EngineConfig", "Runner", "runner_for", "RUNNERS"]
