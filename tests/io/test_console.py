"""The console in a real headless Chromium (Debian's, through Playwright):
it shows a breaker opened by an event sent through Kafka, its close button
produces an operator action, and the close command reaches breaker-commands."""

from __future__ import annotations

import shutil

import pytest

from tests.io.test_operator_kafka import live_service

pytestmark = pytest.mark.kafka

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")


def open_console(pw, port: int, token: str | None, by: str = "ana"):
    """A page on the console, the token and the operator filled in."""
    browser = pw.chromium.launch(executable_path=BROWSER, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1200, "height": 560})
    page.goto(f"http://127.0.0.1:{port}/console")
    if token is not None:
        page.wait_for_selector("#auth:not([hidden])")
        page.fill("#token", token)
        page.fill("#by", by)
    return browser, page


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_the_console_shows_a_breaker_and_its_close_button_closes_it(broker, tmp_path):
    token = tmp_path / "token"
    token.write_text("console-token")
    svc = live_service(broker, tmp_path, ANOMALYD_CONSOLE_TOKEN_FILE=str(token))
    try:
        with playwright.sync_playwright() as pw:
            browser, page = open_console(pw, svc.port, "console-token")
            row = page.locator("#breakers tbody tr", has_text="sku=S")
            row.wait_for()
            assert "open" in row.inner_text() and "pause_sales" in row.inner_text()
            assert page.locator("#alerts tbody tr", has_text="sku=S").count() == 1
            page.once("dialog", lambda d: d.accept("flash sale, stock is fine"))
            row.get_by_role("button", name="close", exact=True).click()
            page.wait_for_selector("#status:has-text('sent: close r')")
            page.wait_for_function("document.querySelector('#breakers tbody').rows.length === 0", timeout=20_000)
            # The alert still fires; its breaker is now closed by the operator.
            page.wait_for_selector("#alerts tbody tr:has-text('closed by operator')")
            browser.close()
        svc.wait(lambda: len(svc.outputs(idle_s=0.5)["breaker-commands"]) == 2, 20, "the close command")
        close = svc.outputs()["breaker-commands"][1]
        assert (close["action"], close["by"], close["reason"]) == (
            "close",
            "ana",
            "close by ana: flash sale, stock is fine",
        )
    finally:
        svc.stop()


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_a_wrong_token_is_refused_in_the_page(broker, tmp_path):
    token = tmp_path / "token"
    token.write_text("console-token")
    svc = live_service(broker, tmp_path, ANOMALYD_CONSOLE_TOKEN_FILE=str(token))
    try:
        with playwright.sync_playwright() as pw:
            browser, page = open_console(pw, svc.port, "not-the-token")
            row = page.locator("#breakers tbody tr", has_text="sku=S")
            page.once("dialog", lambda d: d.accept("x"))
            row.get_by_role("button", name="close", exact=True).click()
            page.wait_for_selector("#status:has-text('refused (401)')")
            assert "open" in row.inner_text()
            browser.close()
        assert len(svc.outputs()["breaker-commands"]) == 1
    finally:
        svc.stop()
