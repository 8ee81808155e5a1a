"""The rules directory watcher: `anomalyd run` polls it (and checks it on
SIGHUP); a changed set is validated in full before the runtime takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..engine.rules.loader import RuleLoadError, RuleSet, load_rules


class RulesWatcher:
    """Polls a rules directory; a changed set is validated in full before use."""

    def __init__(self, directory: str | Path, on_good: Callable[[RuleSet], Any], on_bad: Callable[[list], Any]):
        self.dir = Path(directory)
        self.on_good, self.on_bad = on_good, on_bad
        self.seen = self._stamp()
        self.valid = True  # does the directory as it is now load?

    def _stamp(self) -> tuple:
        try:
            return tuple(
                sorted(
                    (p.name, p.stat().st_mtime_ns, p.stat().st_size)
                    for p in self.dir.iterdir()
                    if p.suffix in (".yaml", ".yml")
                )
            )
        except OSError:
            return ()

    def check(self, force: bool = False) -> None:
        stamp = self._stamp()
        if stamp == self.seen and not force:
            return
        self.seen = stamp
        try:
            rs = load_rules(self.dir)
        except RuleLoadError as exc:
            self.valid = False
            self.on_bad(exc.errors)
            return
        self.valid = True
        self.on_good(rs)
