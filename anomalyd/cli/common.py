"""Flags shared by the commands that run the engine (replay, backtest), and
the argument types and checks every command uses, so that the same mistake
gives the same message and exit code everywhere (2: a usage error)."""

from __future__ import annotations

import argparse
import os
import sys

from ..engine.timeutil import parse_duration, parse_ts
from ..engine.types import EngineConfig


def duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(kind, low, strict: bool, what: str):
    def check(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v != v or v in (float("inf"), float("-inf")) or (v <= low if strict else v < low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    check.__name__ = what  # argparse names the type in some messages
    return check


positive_int = _number(int, 0, True, "a whole number >= 1")
nonneg_int = _number(int, 0, False, "a whole number >= 0")
positive_float = _number(float, 0, True, "a number > 0")


def port(text: str) -> int:
    v = _number(int, 0, False, "a port number 0..65535")(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text}")
    return v


def timestamp(text: str) -> str:
    try:
        parse_ts(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, got {text!r}") from None
    return text


def path_exists(cmd: str, path: str, what: str, flag: str | None = None) -> bool:
    """False (after one line on stderr) for a path given on the command line
    that does not exist: a usage error, exit 2, for every command alike."""
    if path == "-" or os.path.exists(path):
        return True
    print(f"anomalyd {cmd}: {flag + ' ' if flag else ''}{path}: no such {what}", file=sys.stderr)
    return False


def engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allowed-lateness",
        type=duration,
        default=60_000,
        metavar="DUR",
        help="events up to this much out of order still count (default 1m)",
    )
    p.add_argument(
        "--idle-timeout",
        type=duration,
        default=3_600_000,
        metavar="DUR",
        help="drop state of groups idle this long (default 1h; never less than a rule's windows)",
    )
    p.add_argument(
        "--max-groups",
        type=positive_int,
        default=500_000,
        metavar="N",
        help="per-rule cap on tracked groups and on firing alerts, at least 1 (default 500000)",
    )
    p.add_argument(
        "--max-future-skew",
        type=duration,
        default=86_400_000,
        metavar="DUR",
        help="refuse events this far ahead of the wall clock (default 1d)",
    )


def engine_config(a: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        allowed_lateness_ms=a.allowed_lateness,
        idle_timeout_ms=a.idle_timeout,
        max_groups_per_rule=a.max_groups,
        max_future_skew_ms=a.max_future_skew,
    )


def load_settings(cmd: str, **overrides):
    """Settings from ANOMALYD_* (and flags); None after printing each bad or
    unknown setting by its variable name (the caller exits 2)."""
    from pydantic import ValidationError

    from ..surfaces.settings import DEPRECATED, Settings, deprecated_settings, env_file_lines, unknown_settings

    for line in deprecated_settings():
        print(f"anomalyd {cmd}: warning: {line}", file=sys.stderr)
    unknown = unknown_settings()
    for line in unknown:
        print(f"anomalyd {cmd}: {line}", file=sys.stderr)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        in_file = env_file_lines()
        given = {k.upper() for k in os.environ} | set(in_file)
        for e in exc.errors(include_url=False):
            name = "_".join(map(str, e["loc"])).upper()
            var = f"ANOMALYD_{name}"
            # A bad value under a deprecated name is named as it was given.
            var = next(
                (old for old, new in DEPRECATED.items() if new == var and old in given and var not in given), var
            )
            where = f"{var}: " if name else ""  # cross-field checks name their variables
            if name and var in in_file and not any(k.upper() == var for k in os.environ):
                where = f".env:{in_file[var][0]}:{in_file[var][1]}: {where}"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] in ("int_parsing", "bool_parsing", "float_parsing") and "PASSWORD" not in name:
                msg += f", got {e['input']!r}"
            print(f"anomalyd {cmd}: {where}{msg}", file=sys.stderr)
        return None
    return None if unknown else settings
