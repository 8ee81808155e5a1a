"""docs/console.png: the console of a service on the embedded broker, with
breakers opened by events sent through Kafka, one held closed by an
operator, in Debian's headless Chromium (Playwright, no downloaded browser).

    .venv/bin/python docs/make_console_screenshot.py [OUT.png]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from anomalyd.broker.embedded import EmbeddedBroker  # noqa: E402
from tests.io.service import Service  # noqa: E402
from tests.io.test_worker import produce_lines  # noqa: E402


def main(out: Path) -> None:
    broker = EmbeddedBroker(port=0)
    broker.start()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "token").write_text("screenshot-token")
    svc = Service(broker.bootstrap, tmp, rules=REPO / "rules", ANOMALYD_CONSOLE_TOKEN_FILE=str(tmp / "token"))
    now = int(time.time() * 1000)

    def inv(ts: int, sku: str, available: int) -> str:
        v = {"event_id": f"i-{sku}-{ts}", "ts": ts, "sku": sku, "available": available, "warehouse": "WH-SH"}
        return json.dumps({"topic": "inventory", "value": v})

    produce_lines(
        svc, [inv(now - 600_000, "SKU-42", -3), inv(now - 240_000, "SKU-7", -12), inv(now - 1000, "SKU-9", -1)]
    )
    svc.start()
    try:
        svc.wait_ready()
        svc.wait(lambda: svc.get("/api/breakers")[1].count('"state": "open"') == 3, 60, "three breakers")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1180, "height": 520})
            page.goto(f"http://127.0.0.1:{svc.port}/console")
            page.wait_for_selector("#auth:not([hidden])")
            page.fill("#token", "screenshot-token")
            page.fill("#by", "mei")
            row = page.locator("#breakers tbody tr", has_text="sku=SKU-42")
            page.once("dialog", lambda d: d.accept("flash sale: restock at 21:00, keep selling"))
            row.get_by_role("button", name="hold closed 1h").click()
            page.wait_for_selector("#breakers tbody tr:has-text('held closed')")
            page.once("dialog", lambda d: None)
            page.locator("#alerts tbody tr", has_text="sku=SKU-7").get_by_role("button", name="ack").click()
            page.wait_for_selector("#alerts tbody tr:has-text('mei')")
            page.fill("#token", "")  # not in the picture
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        svc.stop()
        broker.stop()
    print(f"make_console_screenshot: wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "console.png")
