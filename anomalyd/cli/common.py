"""Flags shared by the commands that run the engine (replay, backtest)."""

from __future__ import annotations

import argparse

from ..engine.timeutil import parse_duration
from ..engine.types import EngineConfig


def duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allowed-lateness", type=duration, default=60_000, metavar="DUR",
                   help="events up to this much out of order still count (default 1m)")
    p.add_argument("--idle-timeout", type=duration, default=3_600_000, metavar="DUR",
                   help="drop state of groups idle this long (default 1h; never less than a rule's windows)")
    p.add_argument("--max-groups", type=int, default=500_000, metavar="N",
                   help="per-rule cap on tracked groups (default 500000)")
    p.add_argument("--max-future-skew", type=duration, default=86_400_000, metavar="DUR",
                   help="refuse events this far ahead of the wall clock (default 1d)")


def engine_config(a: argparse.Namespace) -> EngineConfig:
    return EngineConfig(allowed_lateness_ms=a.allowed_lateness, idle_timeout_ms=a.idle_timeout,
                        max_groups_per_rule=a.max_groups, max_future_skew_ms=a.max_future_skew)
