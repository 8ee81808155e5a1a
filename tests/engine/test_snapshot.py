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
    p = subprocess.run(
        [sys.executable, "-m", "anomalyd", "simulate", "--minutes", "75", "--seed", "5"],
        capture_output=True,
        check=True,
    )
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
        (tmp_path / f.name).write_text(
            f.read_text().replace("pct: 30\n    direction: both", "pct: 40\n    direction: both")
        )
    b = Engine(load_rules(tmp_path))
    _, report = snapshot.load(b, data)
    assert report["fresh"] == ["order-price-swing"] and len(report["restored"]) == 14


def test_garbage_snapshots_are_refused():
    import marshal
    import zlib

    with pytest.raises(zlib.error, match="incorrect header check"):  # not zlib data at all
        snapshot.load(Engine([]), b"not a snapshot")
    with pytest.raises(EOFError, match="marshal data too short"):  # zlib, but not a marshal value
        snapshot.load(Engine([]), zlib.compress(b"xx"))
    with pytest.raises(ValueError, match="unknown snapshot format"):
        snapshot.load(Engine([]), zlib.compress(marshal.dumps({"format": 99})))


def test_a_snapshot_of_before_the_shared_window_code_restores_change_means():
    """change's mean baseline kept its cells as [sum, count] before it used
    the Avg aggregator ([count, sum]); such a snapshot still restores."""
    import marshal
    import zlib

    from anomalyd.engine.types import RULE_TYPES

    r = RULE_TYPES["change"].model_validate(
        dict(
            id="m",
            type="change",
            source="payments",
            field="amount",
            pct=30,
            baseline="mean",
            window="10m",
            group_by=["merchant_id"],
        )
    )
    t0 = 1_781_712_000_000
    lines = [
        '{"topic":"payments","value":{"event_id":"p%d","ts":%d,"payment_id":"P","order_id":"O","amount":%d,'
        '"status":"succeeded","merchant_id":"M%d"}}' % (i, t0 + i * 7000, 200 if i % 17 == 0 else 100, i % 3)
        for i in range(300)
    ]
    eng = Engine([r])
    whole = [x for ln in lines for x in eng.process_line(ln)]
    assert any(t == "alerts" for t, _, _ in whole)
    eng = Engine([r])
    out = [x for ln in lines[:150] for x in eng.process_line(ln)]
    state = marshal.loads(zlib.decompress(snapshot.dump(eng)))
    st = state["rules"]["m"]
    st["own"] = None  # what the old code wrote
    st["store"] = [(k, v[:1] + ({b: [c[1], c[0]] for b, c in v[1].items()},) + v[2:]) for k, v in st["store"]]
    eng2 = Engine([r])
    snapshot.load(eng2, zlib.compress(marshal.dumps(state)))
    out += [x for ln in lines[150:] for x in eng2.process_line(ln)]
    assert out == whole
