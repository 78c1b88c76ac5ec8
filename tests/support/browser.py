"""Headless Chromium (Debian's, driven by Playwright) for the tests of real pages.

Every request a page makes to anywhere but the server under test is refused
and recorded, so a test means the same on a machine that does reach the
internet: the pages must need nothing from outside.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.support.tools import chromium

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
# A page that polls shows a change a few seconds after it happens, later on a busy machine.
expect.set_options(timeout=TIMEOUT_MS)


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """One browser, installed first when missing (skipped outside CI when it cannot be)."""
    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Offline:
    """A page whose requests reach only the server at ``base_url``."""

    def __init__(self, browser: Browser, base_url: str, **context: Any) -> None:
        self.host = urlsplit(base_url).netloc
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(**context)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route("**/*", self._only_the_server)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _only_the_server(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.host:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")

    def close(self) -> None:
        self.context.close()
