"""Hot reload through a Kubernetes ConfigMap volume.

The kubelet (AtomicWriter) lays a ConfigMap volume out as
    rules/..2026_01_01_00_00_00.000000001/<key>    the files
    rules/..data -> ..2026_...                      symlink to the current directory
    rules/<key>  -> ..data/<key>                    one symlink per key
and updates it by writing a new timestamped directory, pointing a temporary
symlink at it and renaming that over ..data (atomic), then removing the old
directory and adding/removing the per-key symlinks. RulesWatcher stats
rules/*.yaml following symlinks, so it sees the new files' mtime and size."""

from __future__ import annotations

import os
import time
from pathlib import Path

from anomalyd.surfaces.rules_watch import RulesWatcher

from .helpers import ROOT

GOOD = (ROOT / "rules" / "inventory.yaml").read_text()


class ConfigMapVolume:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir()
        self.n = 0

    def publish(self, data: dict[str, str]) -> None:
        self.n += 1
        ts = f"..2026_01_01_00_00_{self.n:02d}.{time.time_ns() % 10**9:09d}"
        new = self.path / ts
        new.mkdir()
        for k, v in data.items():
            (new / k).write_text(v)
        old = os.readlink(self.path / "..data") if (self.path / "..data").is_symlink() else None
        os.symlink(ts, self.path / "..data_tmp")
        os.rename(self.path / "..data_tmp", self.path / "..data")  # the atomic swap
        for k in data:
            if not (self.path / k).is_symlink():
                os.symlink(f"..data/{k}", self.path / k)
        for p in self.path.iterdir():
            if not p.name.startswith("..") and p.name not in data:
                p.unlink()
        if old:
            for f in (self.path / old).iterdir():
                f.unlink()
            (self.path / old).rmdir()


def test_watcher_sees_a_configmap_symlink_swap(tmp_path):
    vol = ConfigMapVolume(tmp_path / "rules")
    vol.publish({"inventory.yaml": GOOD})
    good, bad = [], []
    w = RulesWatcher(vol.path, good.append, bad.append)
    w.check()
    assert good == [] and bad == []  # nothing changed yet

    # an edit of the same key, same size (value 0 -> 5): only the mtime tells
    edited = GOOD.replace("value: 0", "value: 5")
    assert edited != GOOD and len(edited) == len(GOOD)
    vol.publish({"inventory.yaml": edited})
    w.check()
    assert len(good) == 1 and not bad
    rule = {r.id: r for r in good[0].enabled()}["negative-stock"]
    assert rule.value == 5

    # a key added
    vol.publish({"inventory.yaml": edited, "complaints.yaml": (ROOT / "rules" / "complaints.yaml").read_text()})
    w.check()
    assert len(good) == 2 and "complaint-surge" in {r.id for r in good[1].enabled()}

    # a broken edit is refused (the counter behind AnomalydRuleReloadFailed), once
    vol.publish({"inventory.yaml": edited.replace("field: available", "feild: available")})
    w.check()
    w.check()
    assert len(good) == 2 and len(bad) == 1

    # a key removed
    vol.publish({"inventory.yaml": GOOD})
    w.check()
    assert len(good) == 3 and {r.id for r in good[2].enabled()} == {"negative-stock"}
