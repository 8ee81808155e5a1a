"""Event-time parsing and formatting, and rule durations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)

# 9999-12-31T23:59:59.999Z, the contract's upper bound for `ts`.
MAX_TS_MS = 253402300799999

_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d))+$")
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# RFC 3339 demands an explicit offset ("Z" or +hh:mm); fromisoformat alone
# would accept naive local times, which make replays machine-dependent.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def parse_duration(text: str) -> int:
    """'500ms', '30s', '10m', '2h', '1d', or compounds such as '1h30m' ->
    milliseconds. Raises ValueError."""
    if not isinstance(text, str) or not _DURATION.match(text.strip()):
        raise ValueError(f"bad duration {text!r}: use a whole number with ms, s, m, h or d (e.g. 30s, 10m, 1h30m)")
    return sum(int(n) * _UNIT_MS[u] for n, u in _PART.findall(text.strip()))


def format_duration(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_ts(value: int | str) -> int:
    """An event's `ts` (epoch ms or RFC 3339 with offset) -> epoch ms."""
    if type(value) is int:
        ms = int(value)
    elif not isinstance(value, str):  # a bool, a float: neither form
        raise TypeError(f"ts must be epoch milliseconds or an RFC 3339 string, not {type(value).__name__}")
    else:
        if not _RFC3339.match(value):
            raise ValueError("must be RFC 3339 with an offset (e.g. 2026-06-18T00:00:00+08:00) or epoch milliseconds")
        text = value
        frac = re.search(r"\.(\d+)", text)
        if frac and len(frac.group(1)) > 6:  # fromisoformat takes at most microseconds
            text = text.replace(frac.group(0), "." + frac.group(1)[:6])
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
        except ValueError as exc:
            raise ValueError(f"not a valid date: {exc}") from None
        ms = (dt - _EPOCH) // _MS  # exact integer arithmetic, no float rounding
    if ms < 0 or ms > MAX_TS_MS:
        raise ValueError("must lie between 1970-01-01 and 9999-12-31")
    return ms


def format_ts(ms: int) -> str:
    """Epoch ms -> RFC 3339 UTC with milliseconds, the form every output uses."""
    return (_EPOCH + ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")
