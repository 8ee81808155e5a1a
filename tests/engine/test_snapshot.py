"""A snapshot taken anywhere in a stream, restored into a new engine, continues
exactly as if the engine had never stopped."""

import subprocess
import sys

import pytest

from anomalyd.engine import snapshot
from anomalyd.engine.engine import Engine
from anomalyd.engine.rules.loader import load_rules


@pytest.fixture(scope="module")
def stream():
    p = subprocess.run([sys.executable, "-m", "anomalyd", "simulate", "--minutes", "75", "--seed", "5"],
                       capture_output=True, check=True)
    return p.stdout.splitlines()


def test_restore_at_any_point_gives_the_same_output(stream):
    rules = load_rules("rules")
    ref = Engine(rules)
    expected = [o for ln in stream for o in ref.process_line(ln)]
    assert len(expected) >= 10
    for cut in (1, 5_000, len(stream) // 2, len(stream) - 10):
        a = Engine(rules)
        got = [o for ln in stream[:cut] for o in a.process_line(ln)]
        data = snapshot.dump(a, extra={"offsets": {"orders/0": cut}})
        b = Engine(rules)
        extra, report = snapshot.load(b, data)
        assert extra == {"offsets": {"orders/0": cut}} and len(report["restored"]) == 15
        got += [o for ln in stream[cut:] for o in b.process_line(ln)]
        assert got == expected, f"diverged after restoring at line {cut}"


def test_changed_rules_start_fresh_unchanged_keep_state(stream, tmp_path):
    rules = load_rules("rules")
    a = Engine(rules)
    for ln in stream[:20_000]:
        a.process_line(ln)
    data = snapshot.dump(a)
    for f in __import__("pathlib").Path("rules").glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text().replace("pct: 30\n    direction: both", "pct: 40\n    direction: both"))
    b = Engine(load_rules(tmp_path))
    _, report = snapshot.load(b, data)
    assert report["fresh"] == ["order-price-swing"] and len(report["restored"]) == 14


def test_garbage_snapshots_are_refused():
    import zlib
    import marshal
    with pytest.raises(Exception):
        snapshot.load(Engine([]), b"not a snapshot")
    with pytest.raises(ValueError):
        snapshot.load(Engine([]), zlib.compress(marshal.dumps({"format": 99})))
