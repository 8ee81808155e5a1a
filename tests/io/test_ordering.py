"""The reorder buffer releases events in event-time order across partitions."""

from anomalyd.io.ordering import ReorderBuffer


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_holds_events_until_every_active_partition_has_passed_them():
    c = Clock()
    b = ReorderBuffer(idle_s=3, clock=c)
    b.assign(["a", "b"])
    b.push("a", 10, "a10")
    b.push("a", 30, "a30")
    assert list(b.ready()) == []  # b has told us nothing yet
    b.push("b", 20, "b20")
    assert list(b.ready()) == ["a10", "b20"]
    b.push("b", 40, "b40")
    assert list(b.ready()) == ["a30"]


def test_a_caught_up_partition_stops_holding_back_only_after_the_grace_period():
    c = Clock()
    b = ReorderBuffer(idle_s=3, clock=c)
    b.assign(["a", "b"])
    b.push("a", 10, "a10")
    b.push("b", 5, "b5")
    assert list(b.ready()) == ["b5"]
    b.set_caught_up("b", True)
    c.t = 2.9
    assert list(b.ready()) == []
    c.t = 3.1
    assert list(b.ready()) == ["a10"]
    b.set_caught_up("b", False)  # b has data again: it holds time at its last ts
    b.push("a", 50, "a50")
    assert list(b.ready()) == []


def test_after_a_lull_quiet_partitions_get_a_fresh_grace_period():
    c = Clock()
    b = ReorderBuffer(idle_s=3, clock=c)
    b.assign(["a", "b"])
    b.set_caught_up("a", True)
    b.set_caught_up("b", True)
    c.t = 100.0  # long silence, then a burst on a
    b.push("a", 10, "a10")
    b.set_caught_up("a", False)
    assert list(b.ready()) == []  # b may be about to deliver older events
    c.t = 103.5
    assert list(b.ready()) == ["a10"]


def test_a_busy_partition_is_never_idle_however_often_it_is_drained():
    """b's producer runs half a second behind a's; both are drained by every
    fetch. b must keep holding the watermark, so its older events are not
    overtaken by a's newer ones (the bug: busy partitions counted as idle)."""
    c = Clock()
    b = ReorderBuffer(idle_s=3, clock=c)
    b.assign(["a", "b"])
    out = []
    for i in range(100):
        c.t = i * 0.1
        b.push("a", 1000 + i * 100, ("a", 1000 + i * 100))
        if i >= 5:
            b.push("b", 1000 + (i - 5) * 100 + 50, ("b", 1000 + (i - 5) * 100 + 50))
        b.set_caught_up("a", True)
        b.set_caught_up("b", True)
        out += list(b.ready())
    ts = [t for _, t in out]
    assert ts == sorted(ts) and len(out) > 150


def test_a_caught_up_live_partition_holds_the_stream_back_only_by_the_live_delay():
    c, wall = Clock(), Clock()
    b = ReorderBuffer(idle_s=3, clock=c, live_delay_ms=50, wall=wall)
    b.assign(["busy", "sparse"])
    wall.t = 1000.0  # seconds; events carry ms near it (live traffic)
    b.push("sparse", 999_700, "s")  # its last event, 300 ms ago
    b.set_caught_up("sparse", True)
    b.push("busy", 999_900, "b1")
    b.push("busy", 999_990, "b2")
    # Not idle yet (3 s grace), but live: it cannot deliver anything older than now - 50 ms.
    assert list(b.ready()) == ["s", "b1"]
    wall.t = 1000.05
    assert list(b.ready()) == ["b2"]
    b.set_caught_up("sparse", False)  # data waiting to be read: it holds time at its last ts again
    b.push("busy", 1_000_040, "b3")
    assert list(b.ready()) == []


def test_history_is_not_live_so_the_grace_period_still_applies():
    c, wall = Clock(), Clock()
    b = ReorderBuffer(idle_s=3, clock=c, live_delay_ms=50, wall=wall)
    b.assign(["a", "b"])
    wall.t = 2_000_000.0  # a backfill of month-old events: the wall clock says nothing about them
    b.push("b", 5_000, "b5")
    b.set_caught_up("b", True)
    b.push("a", 10_000, "a10")
    assert list(b.ready()) == ["b5"]
    c.t = 3.1
    assert list(b.ready()) == ["a10"]
