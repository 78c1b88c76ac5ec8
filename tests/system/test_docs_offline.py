"""/docs and /redoc render every operation with the network to the outside closed.

A real ``lkern serve`` and headless Chromium (tests/support/browser.py), every
request to anywhere but the service refused and recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support.browser import TIMEOUT_MS, Offline, launched_chromium
from tests.system.conftest import ServedService

# One worker: the first test may install Chromium with apt-get, which takes a lock.
pytestmark = pytest.mark.xdist_group("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def offline(browser: Browser, served_identity: ServedService) -> Iterator[Offline]:
    session = Offline(browser, served_identity.base_url)
    yield session
    session.close()


def operations(base_url: str) -> list[dict[str, Any]]:
    document = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]


def test_swagger_ui_renders_every_operation_offline(offline, served_identity):
    expected = operations(served_identity.base_url)
    page = offline.page
    page.goto(f"{served_identity.base_url}/docs", timeout=TIMEOUT_MS)
    page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
    assert page.locator(".opblock").count() == len(expected)
    assert page.locator(".opblock-summary-description", has_text="Log in").count() == 1
    assert offline.refused == [] and offline.errors == []


def test_redoc_renders_every_operation_offline(offline, served_identity, tmp_path):
    expected = operations(served_identity.base_url)
    page = offline.page
    page.goto(f"{served_identity.base_url}/redoc", timeout=TIMEOUT_MS)
    # One section per operation in the page, one entry per operation in the menu.
    sections = page.locator('[data-section-id*="/operation/"]')
    sections.first.wait_for(timeout=TIMEOUT_MS)
    assert sections.count() == len(expected)
    for operation in expected:
        entry = page.locator(f'li[data-item-id$="/operation/{operation["operationId"]}"]')
        assert entry.count() == 1, operation["operationId"]
    assert page.get_by_role("heading", name="Log in with e-mail and password").count() >= 1
    assert offline.refused == [] and offline.errors == []
