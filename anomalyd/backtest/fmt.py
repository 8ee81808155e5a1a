"""Small formatting helpers shared by the renderers."""

from __future__ import annotations


def duration(ms: int | None) -> str:
    """Compact human duration: 0s, 45s, 4m30s, 2h05m, 3d4h."""
    if ms is None:
        return "–"
    s = int(ms) // 1000
    if ms and s == 0:
        return f"{int(ms)}ms"
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h" if h else f"{d}d"
    if h:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    if m:
        return f"{m}m{s:02d}s" if s else f"{m}m"
    return f"{s}s"


def rate(x: float | None) -> str:
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def pct(x: float | None) -> str:
    """A share as a percentage; one decimal below 10% so a few hits never read as 0%."""
    if x is None:
        return "–"
    if 0 < x < 0.1:
        return f"{x * 100:.1f}%"
    return f"{x * 100:.0f}%"
