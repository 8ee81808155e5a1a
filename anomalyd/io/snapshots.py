"""Snapshot files: the engine state, reorder buffer and input positions,
written atomically so a crash at any moment leaves the previous one intact."""

from __future__ import annotations

import os
from pathlib import Path


class SnapshotFile:
    def __init__(self, directory: Path, name: str):
        self.dir = Path(directory)
        self.path = self.dir / f"{name}.snapshot"

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # atomic: readers see the old or the new file
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
