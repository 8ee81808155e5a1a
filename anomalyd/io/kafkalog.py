"""Keep a broker outage from flooding the log.

While the broker is unreachable, aiokafka logs every failed reconnect,
metadata update, coordinator lookup and fetch at ERROR: about 80 lines a
second (2,350 lines in a 30 s outage, measured in
tests/io/test_broker_faults.py). ``RepeatFilter`` lets each message template
of a logger through once per ``every`` seconds and says, on the next one it
lets through, how many it held back. The worker says in its own words when
the broker goes silent and when it answers again.
"""

from __future__ import annotations

import logging
import time


class RepeatFilter(logging.Filter):
    def __init__(self, every: float = 30.0, clock=time.monotonic):
        super().__init__()
        self.every = every
        self.clock = clock
        self.seen: dict[tuple[str, str], list] = {}  # (logger, template) -> [last shown, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        entry = self.seen.get(key)
        if entry is not None and now - entry[0] < self.every:
            entry[1] += 1
            return False
        if len(self.seen) > 1000:  # templates are few; pre-formatted messages must not grow this
            self.seen.clear()
        self.seen[key] = [now, 0]
        if entry is not None and entry[1]:
            held = entry[1]
            record.msg = f"{record.msg} [{held} more like this in the last {now - entry[0]:.0f}s]"
        return True


_FILTER = RepeatFilter()


def quiet_aiokafka() -> RepeatFilter:
    """Attach one shared RepeatFilter to every aiokafka logger (idempotent)."""
    import aiokafka  # noqa: F401  (its modules create their loggers on import)
    import aiokafka.consumer.fetcher  # noqa: F401
    import aiokafka.consumer.group_coordinator  # noqa: F401
    import aiokafka.producer.sender  # noqa: F401

    names = [n for n in logging.root.manager.loggerDict if n == "aiokafka" or n.startswith("aiokafka.")]
    for name in names:
        logging.getLogger(name).addFilter(_FILTER)  # addFilter ignores a filter already there
    return _FILTER
