"""`anomalyd replay EVENTS.jsonl --rules DIR`: the engine over a file, no broker."""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Iterator

from ..engine.engine import Engine
from ..engine.rules.loader import RuleLoadError, load_rules
from ..engine.types import EngineConfig


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """Lines of a file (or '-' for stdin) as bytes, numbered from 1; blank lines skipped."""
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for n, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if len(line) > 2 or line.strip():  # skip blank lines; one copy per line, not two
                yield n, line
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def write_outputs(outs: list, stream: IO[str]) -> None:
    for topic, _key, value in outs:
        stream.write(json.dumps({"topic": topic, "value": value}, ensure_ascii=False, separators=(",", ":")))
        stream.write("\n")


def _progress(path: str):
    """A progress bar on stderr for large files, only when stderr is a terminal."""
    min_bytes = int(os.environ.get("ANOMALYD_PROGRESS_MIN_BYTES", 20 * 1024 * 1024))
    if path == "-" or not sys.stderr.isatty() or os.path.getsize(path) < min_bytes:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    p = Progress(
        TextColumn("replay"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    return p


def run_replay(path: str, rules_dir: str, config: EngineConfig, summary: bool, out: IO[str]) -> int:
    try:
        ruleset = load_rules(rules_dir)
    except RuleLoadError as exc:
        for e in exc.errors:
            print(e, file=sys.stderr)
        return 1
    from ..engine import tune_gc

    tune_gc()
    engine = Engine(ruleset, config)
    try:
        size = os.path.getsize(path) if path != "-" else 0
    except OSError as exc:
        print(f"anomalyd replay: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    bar = _progress(path)
    process = engine.process_line
    buf: list = []
    if bar is None:
        for n, line in iter_lines(path):
            outs = process(line, n)
            if outs:
                buf.extend(outs)
                if len(buf) > 256:
                    write_outputs(buf, out)
                    buf.clear()
    else:
        with bar:
            task = bar.add_task("replay", total=size)
            done = 0
            for n, line in iter_lines(path):
                outs = process(line, n)
                if outs:
                    buf.extend(outs)
                done += len(line) + 1
                if n % 2000 == 0:
                    bar.update(task, completed=done)
                    write_outputs(buf, out)
                    buf.clear()
    write_outputs(buf, out)
    out.flush()
    if summary:
        s = engine.summary()
        print(
            f"replay: {s['events']} events ({', '.join(f'{k} {v}' for k, v in sorted(s['by_topic'].items()))}), "
            f"{sum(s['invalid'].values())} dead letters, {s['late']} too late, "
            f"{s['alerts'].get('firing', 0)} firing / {s['alerts'].get('resolved', 0)} resolved alerts, "
            f"{s['commands'].get('open', 0)} breaker opens / {s['commands'].get('close', 0)} closes",
            file=sys.stderr,
        )
    return 0
