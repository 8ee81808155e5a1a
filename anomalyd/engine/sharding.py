"""Which shard owns a group, for running the engine on several workers.

The hash must agree between processes (Python's own `hash` of a str is
salted per process), so it is a CRC of the key's repr: group keys are
strings, numbers or tuples of them, whose repr is stable.
"""

from __future__ import annotations

from typing import Any
from zlib import crc32


def shard_of(key: Any, count: int) -> int:
    return crc32(repr(key).encode("utf-8", "surrogatepass")) % count
