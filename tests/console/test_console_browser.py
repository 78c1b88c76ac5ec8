"""The operator console in a real browser (headless Chromium), against ``lkern run``:
sign in, every service up, storage going away named on the page, a log level
changed from the page and kept, a dead letter replayed and a waiting deletion
retried from the page, a service that does not answer shown down (by
``lkern console``), keyboard and labels, polling paused while hidden, and the
page at 1280 x 800 and on a 390 px wide phone.

One browser, one signed-in page and one running system for the whole module.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect

from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SERVICE_NAMES,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    System,
)
from tests.support.browser import Offline, launched_chromium
from tests.support.processes import LkernProcess, free_port

# One worker, with the other Chromium tests (the first may install it with apt-get)
# and the console's security tests (the same running system).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("chromium")]
# How long an expectation waits for the page to show it: the page polls every 3 s and
# one poll asks five services, which on two busy cores (the suite runs whole systems
# beside this one) can take longer than Playwright's 5 s default.
expect.set_options(timeout=20_000)

WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Where to keep the screenshots (docs/ when making the ones README shows).
SCREENSHOTS = os.environ.get("LKERN_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def console(browser: Browser, system: System) -> Iterator[Offline]:
    """The console at 1280 x 800, signed in as the admin, shared by the module's tests."""
    session = Offline(browser, system.console_url, viewport=WIDE)
    session.page.goto(system.console_url)
    sign_in(session.page, ADMIN_EMAIL, ADMIN_PASSWORD)
    yield session
    session.close()


def card(page: Page, service: str) -> Locator:
    return page.locator(f'[data-service="{service}"]')


def test_sign_in_shows_every_service_up(console: Offline):
    page = console.page
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {ADMIN_EMAIL}")
    for service in SERVICE_NAMES:
        shown = card(page, service)
        expect(shown).to_have_attribute("data-state", "up")
        expect(shown.locator(".state")).to_have_text("Up")
        expect(shown).to_contain_text("version 0.1.0")
        expect(shown.locator('[data-check="database"]')).to_have_text("✓ database")
    expect(card(page, "issues").locator('[data-check="storage"]')).to_have_text("✓ storage")
    expect(card(page, "orders").locator('[data-figure="dead_lettered"]')).to_have_text("0")
    expect(card(page, "contacts").locator('[data-figure="outbox_backlog"]')).to_be_visible()
    # The session is a cookie the page's script cannot read; no token is in its reach.
    [cookie] = console.context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""
    stored = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert stored == "[{},{}]"
    assert console.refused == [] and console.errors == []


def test_a_non_admin_is_refused_with_a_clear_message(browser: Browser, system: System):
    session = Offline(browser, system.console_url, viewport=PHONE)
    try:
        session.page.goto(system.console_url)
        sign_in(session.page, VIEWER_EMAIL, VIEWER_PASSWORD)
        expect(session.page.get_by_role("alert")).to_have_text(
            f"{VIEWER_EMAIL} is signed up as viewer, not admin: "
            "the console is for administrators only."
        )
        expect(session.page.locator("#dashboard")).to_be_hidden()
        expect(session.page.get_by_role("button", name="Sign out")).to_be_hidden()
        assert session.context.cookies() == []
    finally:
        session.close()


def test_storage_going_away_shows_issues_not_ready_with_the_check_named(
    console: Offline, system: System
):
    page = console.page
    issues = card(page, "issues")
    system.proxy.close()
    try:
        expect(issues).to_have_attribute("data-state", "not_ready")
        expect(issues.locator(".state")).to_have_text("Not ready")
        expect(issues.locator('[data-check="storage"]')).to_have_text(re.compile(r"✗ storage: "))
        expect(issues.locator('[data-check="database"]')).to_have_text("✓ database")
        expect(card(page, "contacts")).to_have_attribute("data-state", "up")
    finally:
        system.proxy.open()
    expect(issues).to_have_attribute("data-state", "up")


def test_a_log_level_changed_on_the_page_is_kept(console: Offline, system: System):
    page = console.page
    level = page.get_by_label("Log level of contacts")
    expect(level).to_have_value("info")
    level.select_option("debug")
    expect(card(page, "contacts").locator("output")).to_have_text("Set to debug")
    with system.admin() as admin:
        assert admin.get(f"{system.url('contacts')}/config/log-level").json()["level"] == "debug"
        # Each service's level is its own, though they share the process.
        assert admin.get(f"{system.url('orders')}/config/log-level").json()["level"] == "info"
    saved = json.loads((system.data_dir / "contacts" / "runtime_config.json").read_text())
    assert saved["log_level"] == "debug"
    page.reload()
    expect(page.get_by_label("Log level of contacts")).to_have_value("debug")
    page.get_by_label("Log level of contacts").select_option("info")
    expect(card(page, "contacts").locator("output")).to_have_text("Set to info")
    assert console.errors == []


def test_a_dead_letter_is_replayed_from_the_page(console: Offline, system: System):
    page = console.page
    # The orders' read model refuses this one contact until the trigger is dropped:
    # a handler that fails every retry, then works.
    system.sqlite(
        "orders",
        "CREATE TRIGGER console_test_refuse BEFORE INSERT ON contacts_view "
        "WHEN NEW.name = 'Dead Letter' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    try:
        with system.admin() as admin:
            made = admin.post(
                f"{system.url('contacts')}/api/v1/contacts",
                json={"name": "Dead Letter", "email": "dead.letter@example.com"},
            )
        assert made.status_code == 201, made.text
        row = page.locator("#dead-letters tbody tr", has_text="lkern.contacts.created")
        expect(row).to_contain_text("refused by the test")
        expect(row).to_contain_text("orders")
        expect(card(page, "orders").locator('[data-figure="dead_lettered"]')).to_have_text("1")
    finally:
        system.sqlite("orders", "DROP TRIGGER console_test_refuse")
    row.get_by_role(
        "button", name=re.compile(r"^Replay lkern\.contacts\.created .* of orders$")
    ).click()
    expect(page.locator("#notice")).to_contain_text("replayed: processed")
    expect(row).to_have_count(0)
    contact_id = made.json()["id"].replace("-", "")
    names = system.sqlite(
        "orders",
        "SELECT name FROM contacts_view WHERE replace(contact_id, '-', '') = ?",
        contact_id,
    )
    assert names == [("Dead Letter",)]


def test_a_waiting_deletion_is_retried_from_the_page(console: Offline, system: System):
    page = console.page
    base = system.url("issues")
    with system.admin() as admin:
        issue = admin.post(f"{base}/api/v1/issues", json={"title": "Paper jam", "type": "bug"})
        assert issue.status_code == 201, issue.text
        code = issue.json()["code"]
        attached = admin.post(
            f"{base}/api/v1/issues/{issue.json()['id']}/attachments",
            files={"file": ("note.txt", b"tray 2\n", "text/plain")},
        )
        assert attached.status_code == 201, attached.text
        system.proxy.close()
        try:
            purge = admin.delete(f"{base}/api/v1/issues/{issue.json()['id']}/permanent")
        finally:
            system.proxy.open()
    assert purge.status_code == 503, purge.text
    row = page.locator("#pending-deletions tbody tr", has_text=code)
    expect(row).to_contain_text("pending")
    expect(row).to_contain_text("0/1")
    row.get_by_role("button", name=f"Retry deletion {code} of issues").click()
    expect(page.locator("#notice")).to_have_text(f"issues: deletion of {code} completed")
    expect(row).to_have_count(0)
    audit = page.locator("#audits tbody tr", has_text=code)
    expect(audit).to_contain_text("completed")
    expect(audit).to_contain_text("1/1")


def test_every_control_is_labelled_and_reached_by_keyboard(console: Offline):
    page = console.page
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, select, input, [tabindex]')]
            .filter((e) => e.offsetParent !== null)
            .filter((e) => !(e.getAttribute('aria-label') || (e.labels && e.labels.length)
                             || e.getAttribute('aria-labelledby') || e.textContent.trim()))
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    page.locator("body").focus()
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(
            page.evaluate("document.activeElement.id || document.activeElement.textContent")
        )
    assert {"sign-out", *(f"level-{name}" for name in SERVICE_NAMES)} <= reached
    # What each number means: a legend on the page and a tooltip on the number.
    legend = page.locator("details.legend")
    expect(legend).to_contain_text("Outbox backlog")
    expect(legend).to_contain_text("Consumer lag")
    figure = card(page, "orders").locator('[data-figure="consumer_lag_seconds"]')
    expect(figure).to_have_attribute("title", re.compile("event's creation"))


def test_lkern_console_shows_a_service_that_does_not_answer_as_down(
    browser: Browser, system: System, tmp_path: Path
):
    port, nobody = free_port(), free_port()
    process = LkernProcess(
        [
            "console",
            "--service",
            f"identity={system.url('identity')}",
            "--service",
            f"ghost=http://127.0.0.1:{nobody}",
            "--port",
            str(port),
        ],
        env={"LKERN_DATA_DIR": str(tmp_path)},
        log_path=tmp_path / "console.log",
    )
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        process.wait_healthy(base, timeout=90)  # the CLI imports every service first
        session = Offline(browser, base, viewport=WIDE)
        try:
            session.page.goto(base)
            sign_in(session.page, ADMIN_EMAIL, ADMIN_PASSWORD)
            ghost = card(session.page, "ghost")
            expect(ghost).to_have_attribute("data-state", "down")
            expect(ghost.locator(".state")).to_have_text("Down")
            expect(ghost).to_contain_text("Does not answer: ghost refused the connection")
            expect(ghost.get_by_label("Log level of ghost")).to_be_hidden()
            expect(card(session.page, "identity")).to_have_attribute("data-state", "up")
            assert session.refused == [] and session.errors == []
        finally:
            session.close()
    finally:
        process.stop()
    assert f"console listening on http://127.0.0.1:{port}" in process.output()


HIDE = """(hidden) => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_polling_stops_while_the_tab_is_hidden(console: Offline):
    page = console.page
    polls: list[str] = []

    def seen(request: Request) -> None:
        if request.url.endswith("/api/overview"):
            polls.append(request.url)

    def waited_for(condition: Callable[[], bool], what: str) -> None:
        # Playwright hands over its events only while it is called: wait through it.
        for _ in range(150):
            if condition():
                return
            page.wait_for_timeout(200)
        raise AssertionError(f"no {what}")

    page.on("request", seen)
    try:
        waited_for(lambda: len(polls) >= 1, "poll while visible")
        page.evaluate(HIDE, True)
        expect(page.locator("#live")).to_have_text("Paused while the tab is hidden")
        page.wait_for_timeout(500)  # a poll under way when the tab was hidden ends
        hidden = len(polls)
        page.wait_for_timeout(3 * 3000)  # three poll intervals
        assert len(polls) == hidden
        page.evaluate(HIDE, False)
        waited_for(lambda: len(polls) > hidden, "poll once visible again")
    finally:
        page.remove_listener("request", seen)


@pytest.mark.parametrize(
    ("size", "name"), [(WIDE, "console-1280x800.png"), (PHONE, "console-390.png")]
)
def test_the_page_fits_a_wide_screen_and_a_phone(
    browser: Browser, system: System, tmp_path: Path, size: dict[str, int], name: str
):
    # An audit of its own to show, whichever tests ran before this one on its worker.
    base = system.url("contacts")
    with system.admin() as admin:
        contact = admin.post(
            f"{base}/api/v1/contacts", json={"name": "Shown", "email": f"shown-{name}@example.com"}
        )
        assert contact.status_code == 201, contact.text
        purged = admin.delete(f"{base}/api/v1/contacts/{contact.json()['id']}/permanent")
        assert purged.status_code == 200, purged.text
    session = Offline(browser, system.console_url, viewport=size)
    try:
        page = session.page
        page.goto(system.console_url)
        sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
        for service in SERVICE_NAMES:
            expect(card(page, service)).to_have_attribute("data-state", "up")
        expect(page.locator("#audits tbody tr").first).not_to_contain_text("No permanent")
        # Nothing wider than the screen: no sideways scrolling, on a phone either.
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        out = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out / name, full_page=False)
        assert (out / name).stat().st_size > 10_000
        assert session.refused == [] and session.errors == []
    finally:
        session.close()
