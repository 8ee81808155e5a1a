"""anomalyd.alertmanager.forwarder against a real Alertmanager (Debian's
`prometheus-alertmanager`, started here on a free port), and against dead
and hanging endpoints."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from anomalyd.alertmanager.forwarder import AlertmanagerForwarder, alert_labels, label_name, to_alertmanager
from tests.io.service import free_port  # noqa: F401  (one helper for every test)

AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_am = pytest.mark.skipif(
    AM_BIN is None, reason="Alertmanager binary missing: apt-get install prometheus-alertmanager"
)


def iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(status: str = "firing", *, started: datetime, ts: datetime, sku: str = "SKU-00094", value=-20) -> dict:
    return {
        "alert_id": f"id-{status}-{sku}",
        "fingerprint": f"fp-{sku}",
        "rule_id": "negative-stock",
        "rule_version": "f72bbc4353d62277",
        "severity": "P1",
        "status": status,
        "source": "inventory",
        "group": {"sku": sku},
        "value": value,
        "threshold": 0,
        "message": f"SKU {sku}: available stock is {value}",
        "labels": {"team": "supply"},
        "started_at": iso(started),
        "ts": iso(ts),
        "evidence": ["inv-1"],
        "details": {},
        "shadow": False,
        "runbook": "Check the SKU's flash-sale allocation; restock or keep sales paused.",
        "owner": "supply-oncall",
    }


# -- mapping (no server) -------------------------------------------------------------
def test_mapping_labels_annotations_and_times():
    now = datetime.now(timezone.utc)
    r = record(started=now - timedelta(minutes=5), ts=now - timedelta(minutes=5))
    r["group"] = {"sku": "SKU-1", "attrs.region": "east", "severity": "odd", "n": 3}
    r["labels"] = {"team": "supply", "sku": "must-not-win"}
    am = to_alertmanager(r, now=now, firing_ttl_s=240)
    assert am["labels"] == {
        "alertname": "negative-stock",
        "severity": "P1",
        "source": "inventory",
        "team": "supply",
        "sku": "SKU-1",
        "attrs_region": "east",
        "group_severity": "odd",
        "n": "3",
    }
    assert am["annotations"]["summary"] == am["annotations"]["message"] == "SKU SKU-00094: available stock is -20"
    assert am["annotations"]["runbook"].startswith("Check the SKU")
    assert (am["annotations"]["value"], am["annotations"]["threshold"]) == ("-20", "0")
    assert am["startsAt"] == r["started_at"]
    assert am["endsAt"] == iso(now + timedelta(seconds=240))
    res = record("resolved", started=now - timedelta(minutes=5), ts=now - timedelta(minutes=1), value=40)
    am2 = to_alertmanager(res, now=now)
    assert am2["endsAt"] == res["ts"] and am2["startsAt"] == res["started_at"]
    # a future event time (clock skew) is clamped to now: never endsAt < startsAt
    fut = record("resolved", started=now + timedelta(hours=1), ts=now + timedelta(hours=2))
    am3 = to_alertmanager(fut, now=now)
    assert am3["startsAt"] == am3["endsAt"] == iso(now)
    assert label_name("0bad-name.x") == "_0bad_name_x"
    assert alert_labels({**r, "shadow": True})["shadow"] == "true"


# -- a real Alertmanager --------------------------------------------------------------
class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on a free port whose one receiver is a webhook in this test."""
    received: list = []
    hook_cls = type("Hook", (_Hook,), {"received": received})
    hook = ThreadingHTTPServer(("127.0.0.1", 0), hook_cls)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = free_port()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(f"""
route:
  receiver: hook
  group_by: [alertname, sku]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{hook.server_port}/
        send_resolved: true
""")
    log = open(tmp_path / "alertmanager.log", "w")
    proc = subprocess.Popen(
        [
            AM_BIN,
            f"--config.file={cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 15
        while True:
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > end:
                raise AssertionError("alertmanager did not start:\n" + (tmp_path / "alertmanager.log").read_text())
            time.sleep(0.1)
        yield base, received
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        hook.shutdown()
        log.close()


def am_alerts(base: str, alertname: str) -> list[dict]:
    q = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
    with urllib.request.urlopen(f"{base}/api/v2/alerts?{q}", timeout=2) as r:
        return json.loads(r.read())


async def until(cond, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = await asyncio.get_running_loop().run_in_executor(None, cond)
        if v:
            return v
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@needs_am
def test_firing_then_resolved_reaches_a_real_alertmanager(alertmanager):
    base, received = alertmanager
    now = datetime.now(timezone.utc).replace(microsecond=0)
    firing = record(started=now - timedelta(minutes=2), ts=now - timedelta(minutes=2))
    resolved = record("resolved", started=now - timedelta(minutes=2), ts=now - timedelta(seconds=30), value=400)

    async def scenario():
        fwd = AlertmanagerForwarder(base, resend_interval=0.5, backoff_initial=0.05)
        task = asyncio.create_task(fwd.run())
        fwd.submit(firing)
        got = await until(lambda: am_alerts(base, "negative-stock"), 10, "the firing alert in /api/v2/alerts")
        assert len(got) == 1
        a = got[0]
        assert a["status"]["state"] == "active"
        assert a["labels"] == {
            "alertname": "negative-stock",
            "severity": "P1",
            "source": "inventory",
            "team": "supply",
            "sku": "SKU-00094",
        }
        assert a["annotations"]["summary"] == "SKU SKU-00094: available stock is -20"
        assert a["annotations"]["runbook"] == firing["runbook"]
        assert a["annotations"]["value"] == "-20"
        assert datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) == now - timedelta(minutes=2)
        first_end = a["endsAt"]
        # still firing: the forwarder re-sends it, pushing endsAt forward
        await until(
            lambda: am_alerts(base, "negative-stock")[0]["endsAt"] > first_end, 10, "a re-send extending endsAt"
        )
        assert fwd.active

        fwd.submit(resolved)
        # resolved: endsAt (= the record's ts) is in the past, so the alert leaves the active list
        await until(lambda: am_alerts(base, "negative-stock") == [], 10, "the alert to be resolved")
        assert not fwd.active
        await fwd.close()
        await asyncio.wait_for(task, 5)
        return fwd

    fwd = asyncio.run(scenario())
    assert fwd.failed == 0 and fwd.dropped == 0 and fwd.sent >= 3

    # the notifications Alertmanager sent: firing, then resolved with our endsAt
    end = time.time() + 10
    while time.time() < end and not any(n["status"] == "resolved" for n in received):
        time.sleep(0.1)
    statuses = [n["status"] for n in received]
    assert statuses[0] == "firing" and "resolved" in statuses, statuses
    done = next(n for n in received if n["status"] == "resolved")["alerts"][0]
    assert done["labels"]["sku"] == "SKU-00094"
    assert datetime.fromisoformat(done["endsAt"].replace("Z", "+00:00")) == now - timedelta(seconds=30)


# -- dead and hanging endpoints -------------------------------------------------------
def test_dead_alertmanager_never_blocks_submit_and_counts_failures():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    async def scenario():
        fwd = AlertmanagerForwarder(
            url, max_queue=100, batch_size=10, max_retries=2, backoff_initial=0.01, backoff_max=0.02, timeout=1
        )
        task = asyncio.create_task(fwd.run())
        now = datetime.now(timezone.utc)
        t = time.perf_counter()
        for i in range(5000):
            fwd.submit(record(started=now, ts=now, sku=f"SKU-{i}"))
        took = time.perf_counter() - t
        assert took < 0.5, took  # 5000 submits with the sender failing: no waiting on I/O
        assert len(fwd.queue) <= 100 and fwd.dropped >= 4900
        await until(lambda: fwd.failed > 0 and not fwd.queue, 10, "failures to be counted")
        await fwd.close(timeout=1)
        await asyncio.wait_for(task, 5)
        return fwd

    fwd = asyncio.run(scenario())
    assert fwd.sent == 0
    assert fwd.failed + fwd.dropped == 5000


def test_hanging_alertmanager_times_out_and_close_returns():
    srv = socket.socket()  # accepts connections (backlog) but never answers
    srv.bind(("127.0.0.1", 0))
    srv.listen(50)
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"

    async def scenario():
        fwd = AlertmanagerForwarder(url, max_retries=1, backoff_initial=0.01, timeout=0.3)
        task = asyncio.create_task(fwd.run())
        now = datetime.now(timezone.utc)
        fwd.submit(record(started=now, ts=now))
        await until(lambda: fwd.failed == 1, 5, "the time-outs to give up")
        t = time.perf_counter()
        fwd.submit(record(started=now, ts=now, sku="SKU-2"))  # during a hanging request: returns at once
        assert time.perf_counter() - t < 0.05
        await fwd.close(timeout=0.5)
        await asyncio.wait_for(task, 3)
        return fwd

    try:
        fwd = asyncio.run(scenario())
    finally:
        srv.close()
    assert fwd.sent == 0 and fwd.failed >= 1


def test_a_malformed_record_is_counted_and_does_not_stop_the_sender():
    async def scenario():
        fwd = AlertmanagerForwarder(f"http://127.0.0.1:{free_port()}", max_retries=0, backoff_initial=0.01)
        task = asyncio.create_task(fwd.run())
        fwd.submit("not a dict")  # type: ignore[arg-type]
        now = datetime.now(timezone.utc)
        fwd.submit(record(started=now, ts=now))
        await until(lambda: fwd.failed == 2, 5, "both records to be accounted for")
        assert not task.done()
        await fwd.close(timeout=0.5)
        await asyncio.wait_for(task, 3)

    asyncio.run(scenario())
