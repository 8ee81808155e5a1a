"""`anomalyd rules check DIR` and `anomalyd rules list DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..engine.rules.loader import RuleError, RuleLoadError, load_rules


def _snippet(err: RuleError) -> list[str]:
    """The offending line with a caret under the column, as Falco shows it."""
    try:
        lines = Path(err.file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    if not 1 <= err.line <= len(lines):
        return []
    text = lines[err.line - 1]
    return [f"    {text}", "    " + " " * (err.col - 1) + "^"]


def check(directory: str, snippets: bool = True) -> int:
    try:
        rs = load_rules(directory)
    except RuleLoadError as exc:
        for e in exc.errors:
            print(e)
            if snippets:
                for s in _snippet(e):
                    print(s)
        n = len(exc.errors)
        print(f"{n} error{'s' if n != 1 else ''}; nothing loaded", file=sys.stderr)
        return 1
    if not rs.files:
        print(f"{directory}: no rule files (*.yaml, *.yml) in this directory; nothing loaded", file=sys.stderr)
        return 1
    enabled = len(rs.enabled())
    print(f"OK: {len(rs.rules)} rules ({enabled} enabled) in {len(rs.files)} files, rule set version {rs.version}")
    return 0


def list_rules(directory: str) -> int:
    try:
        rs = load_rules(directory)
    except RuleLoadError as exc:
        for e in exc.errors:
            print(e)
        return 1
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"rules in {directory}")
    for col in ("id", "type", "reads", "severity", "owner", "state", "for", "breaker"):
        t.add_column(col)
    for lr in sorted(rs.rules, key=lambda x: x.rule.id):
        r = lr.rule
        state = ("shadow" if r.mode == "shadow" else "live") if r.enabled else "disabled"
        kind = r.type + (f" {r.fn}" if getattr(r, "fn", "count") != "count" else "")  # type: ignore[attr-defined]
        # What it reads: a source, two (a sequence: first -> then), or alerts of named rules.
        reads = (
            " → ".join(r.sources())
            if r.sources()
            else "alerts of " + (", ".join(r.rules) if isinstance(r.rules, list) else "tags " + ", ".join(r.rules.tags))  # type: ignore[attr-defined]
        )
        t.add_row(
            r.id,
            kind,
            reads,
            r.severity,
            r.owner or "-",
            state,
            r.for_ if r.for_ != "0s" else "-",
            r.breaker.action if r.breaker else "-",
        )
    Console(width=180).print(t)
    return 0
