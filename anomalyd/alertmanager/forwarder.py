"""Forward anomalyd alert records to Alertmanager (API v2). Optional.

    fwd = AlertmanagerForwarder("http://alertmanager:9093")
    task = asyncio.create_task(fwd.run())
    fwd.submit(alert_record)      # a dict as produced on the `alerts` topic; never blocks
    ...
    await fwd.close(timeout=5)    # sends what is queued (within the timeout), then stops

`submit()` only appends to a bounded queue: when the queue is full the oldest
record is dropped and counted (`dropped`). `run()` takes batches off the
queue and POSTs them to `/api/v2/alerts`, retrying connection errors, time-outs,
429 and 5xx with exponential backoff; a batch still refused after
`max_retries` retries (or answered 4xx) is counted in `failed`.

Mapping of one alert record to one Alertmanager alert:

- labels: `alertname` = rule_id, `severity`, `source`, the rule's `labels`,
  the `group` fields (names made valid: `attrs.region` -> `attrs_region`;
  a group field wins over a rule label of the same name, and `alertname`,
  `severity` and `source` win over both), and `shadow="true"` for shadow
  rules. Alertmanager identifies an alert by its labels, so the firing and
  the resolved record of one episode map to the same alert.
- annotations: `summary` and `message` (the message), `runbook` (and
  `runbook_url` when it is a URL), `owner`, `value`, `threshold`,
  `alert_id`, `fingerprint`, `rule_version`.
- `startsAt` = started_at. A resolved record has `endsAt` = its ts.
  Alertmanager resolves an alert by itself once `endsAt` passes, and
  anomalyd emits one record per state change, so the forwarder keeps the
  firing alerts it has sent and re-sends them every `resend_interval`
  with `endsAt` = now + 4 x resend_interval (as Prometheus does): if
  anomalyd stops, Alertmanager resolves them after that.
- Times are event times. Where one lies in the future by the wall clock
  (clock skew, allowed up to max_future_skew), it is clamped to now so that
  Alertmanager neither rejects the alert (endsAt before startsAt) nor keeps
  a resolved alert active.

Counters (attributes): `sent` alerts accepted by Alertmanager (re-sends
included), `failed` alerts given up on (or records that could not be
mapped), `dropped` records dropped from a full queue, `batches` POSTs that
succeeded.

Wiring (not done here): call `submit(value)` for each record the worker
produces to the `alerts` topic (Runtime.emit), start `run()` next to the
worker and `await close()` after it stops.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger("anomalyd.alertmanager")

_LABEL_RE = re.compile(r"[^a-zA-Z0-9_]")
_FIXED = ("alertname", "severity", "source")


def label_name(name: str) -> str:
    """A valid Prometheus/Alertmanager label name for `name`."""
    n = _LABEL_RE.sub("_", str(name)) or "_"
    return "_" + n if n[0].isdigit() else n


def _label_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        d = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _fmt(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(alert: dict) -> dict[str, str]:
    labels: dict[str, str] = {}
    for k, v in (alert.get("labels") or {}).items():
        if (s := _label_value(v)) not in (None, ""):
            labels[label_name(k)] = s
    for k, v in (alert.get("group") or {}).items():
        name = label_name(k)
        if name in _FIXED:
            name = "group_" + name
        if (s := _label_value(v)) not in (None, ""):
            labels[name] = s
    if alert.get("shadow"):
        labels["shadow"] = "true"
    for k in _FIXED:
        if (s := _label_value(alert.get("rule_id" if k == "alertname" else k))) not in (None, ""):
            labels[k] = s
    return labels


def alert_annotations(alert: dict) -> dict[str, str]:
    ann: dict[str, str] = {}
    msg = alert.get("message")
    if msg:
        ann["summary"] = ann["message"] = str(msg)
    runbook = alert.get("runbook")
    if runbook:
        ann["runbook"] = str(runbook)
        if str(runbook).startswith(("http://", "https://")):
            ann["runbook_url"] = str(runbook)
    for k in ("owner", "value", "threshold", "alert_id", "fingerprint", "rule_version"):
        if (s := _label_value(alert.get(k))) not in (None, ""):
            ann[k] = s
    return ann


def to_alertmanager(
    alert: dict, *, now: datetime | None = None, firing_ttl_s: float = 240.0, generator_url: str | None = None
) -> dict:
    """One alert record as an Alertmanager v2 postable alert."""
    now = now or datetime.now(timezone.utc)
    starts = _parse(alert.get("started_at")) or _parse(alert.get("ts")) or now
    out: dict[str, Any] = {"labels": alert_labels(alert), "annotations": alert_annotations(alert)}
    if alert.get("status") == "resolved":
        ends = min(_parse(alert.get("ts")) or now, now)
    else:
        ends = now + timedelta(seconds=firing_ttl_s)
    starts = min(starts, now, ends)
    out["startsAt"] = _fmt(starts)
    out["endsAt"] = _fmt(ends)
    if generator_url:
        out["generatorURL"] = generator_url
    return out


class AlertmanagerForwarder:
    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        max_retries: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 5.0,
        resend_interval: float = 60.0,
        max_active: int = 100_000,
        generator_url: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        url = url.rstrip("/")
        self.url = url if url.endswith("/api/v2/alerts") else url + "/api/v2/alerts"
        self.queue: collections.deque[dict] = collections.deque(maxlen=max(1, max_queue))
        self.batch_size = max(1, batch_size)
        self.max_retries = max(0, max_retries)
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.timeout = timeout
        self.resend_interval = resend_interval
        self.max_active = max_active
        self.generator_url = generator_url
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        # firing alerts sent and not yet resolved: label set -> alert record (re-sent periodically)
        self.active: collections.OrderedDict[tuple, dict] = collections.OrderedDict()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.batches = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False
        self._deadline: float | None = None
        self._busy = False
        self._done: asyncio.Event | None = None

    # -- producer side ------------------------------------------------------------
    def submit(self, alert: dict) -> None:
        """Queue one alert record. Never blocks; drops the oldest record when full.
        Safe to call from any thread and before `run()` starts."""
        q = self.queue
        if len(q) == q.maxlen:
            self.dropped += 1
        q.append(alert)
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    # -- sender side ----------------------------------------------------------------
    async def run(self) -> None:
        """Send until `close()`; run it as a task next to the worker."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        self._done = asyncio.Event()
        try:
            await self._run(wake)
        finally:
            self._done.set()
            if self.queue:
                log.warning("alertmanager: %d alert records not sent at shutdown", len(self.queue))

    async def _run(self, wake: asyncio.Event) -> None:
        import aiohttp

        next_resend = time.monotonic() + self.resend_interval
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            while True:
                if self._closing and (not self.queue or self._past_deadline()):
                    break
                if not self.queue:
                    wait = max(0.0, next_resend - time.monotonic())
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=wait)
                    except asyncio.TimeoutError:
                        pass
                    wake.clear()
                self._busy = True
                try:
                    if self.queue:
                        records = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
                        payloads = []
                        for r in records:
                            try:
                                payloads.append(self._prepare(r))
                            except Exception as exc:  # a malformed record must not stop the sender
                                self.failed += 1
                                log.error("alertmanager: cannot map alert record %.200r: %s", r, exc)
                        if payloads:
                            await self._post(session, payloads)
                    if time.monotonic() >= next_resend and not self._closing:
                        next_resend = time.monotonic() + self.resend_interval
                        await self._resend(session)
                finally:
                    self._busy = False

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most `timeout` seconds), then let `run()` return
        and wait for it (a little past the timeout for a request in flight)."""
        self._closing = True
        self._deadline = time.monotonic() + timeout
        if self._wake is not None and self._done is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(self._done.wait(), timeout=timeout + self.timeout + 1)
            except asyncio.TimeoutError:
                log.warning("alertmanager: forwarder did not stop in time")

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and nothing is being sent (tests, shutdown)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.queue and not self._busy:
                return True
            await asyncio.sleep(0.01)
        return False

    # -- internals ------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _ttl(self) -> float:
        return 4 * self.resend_interval

    def _prepare(self, record: dict) -> dict:
        payload = to_alertmanager(record, firing_ttl_s=self._ttl(), generator_url=self.generator_url)
        key = tuple(sorted(payload["labels"].items()))
        if record.get("status") == "resolved":
            self.active.pop(key, None)
        else:
            self.active[key] = record
            self.active.move_to_end(key)
            while len(self.active) > self.max_active:  # Alertmanager times the oldest out by itself
                self.active.popitem(last=False)
        return payload

    async def _resend(self, session) -> None:
        records = list(self.active.values())
        for i in range(0, len(records), self.batch_size):
            chunk = [
                to_alertmanager(r, firing_ttl_s=self._ttl(), generator_url=self.generator_url)
                for r in records[i : i + self.batch_size]
            ]
            if not await self._post(session, chunk):
                return  # Alertmanager is unwell: try again next round, new records first

    async def _post(self, session, payloads: list[dict]) -> bool:
        import aiohttp

        body = json.dumps(payloads, separators=(",", ":"))
        delay = self.backoff_initial
        for attempt in range(self.max_retries + 1):
            err: str
            try:
                async with session.post(self.url, data=body) as resp:
                    if 200 <= resp.status < 300:
                        self.sent += len(payloads)
                        self.batches += 1
                        return True
                    text = (await resp.text())[:300]
                    err = f"HTTP {resp.status}: {text.strip()}"
                    if 400 <= resp.status < 500 and resp.status != 429:  # will not get better
                        log.error("alertmanager refused %d alerts: %s", len(payloads), err)
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                err = f"{type(exc).__name__}: {exc}"
            if attempt == self.max_retries or (self._closing and self._past_deadline()):
                log.warning(
                    "alertmanager: giving up on %d alerts after %d attempts (%s)", len(payloads), attempt + 1, err
                )
                break
            log.info("alertmanager: %s; retrying in %.1fs", err, delay)
            if self._deadline is not None:
                delay = max(0.0, min(delay, self._deadline - time.monotonic()))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
        self.failed += len(payloads)
        return False
