"""The console's defences, against the real ``lkern run`` (plain HTTP, no browser):
only its own origin, the session cookie's flags, CSRF, the Content-Security-Policy,
admins only, and sign-out that ends the login at identity."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from lkern.console.settings import ConsoleSettings
from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    System,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("chromium")]


class Browserish(httpx.Client):
    """What the console's own page sends: its origin on every call, the CSRF token
    on those that change something."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=30, headers={"Origin": base_url})
        self.csrf: str | None = None

    def sign_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> httpx.Response:
        answer = self.post("/session", json={"email": email, "password": password})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf_token"]
        return answer

    def changing(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.request(method, path, headers={"X-CSRF-Token": self.csrf or ""}, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client(system: System) -> Iterator[Browserish]:
    with Browserish(system.console_url) as client:
        yield client


def test_run_serves_the_console_and_logs_it_beside_the_services(system: System):
    output = system.process.output()
    assert f"console listening on http://127.0.0.1:{system.ports['console']}" in output
    assert "contacts listening on http://127.0.0.1" in output
    page = httpx.get(system.console_url)
    assert page.status_code == 200 and "<title>L-KERN console</title>" in page.text


def test_the_console_answers_only_its_own_origin(system: System, client: Browserish):
    # Another name for this address (DNS rebinding) is refused, page and API alike.
    for path in ("/", "/api/overview", "/session"):
        answer = httpx.get(f"{system.console_url}{path}", headers={"Host": "evil.example"})
        assert answer.status_code == 403, path
        assert "answers only at" in answer.json()["detail"]
    assert client.sign_in().status_code == 200
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = client.get("/api/overview", headers=headers)
        assert answer.status_code == 403, headers
    # Another origin cannot sign in, nor change anything with the session's cookie.
    foreign = httpx.post(
        f"{system.console_url}/session",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    no_origin = httpx.put(
        f"{system.console_url}/api/services/contacts/log-level",
        json={"level": "debug"},
        headers={"X-CSRF-Token": client.csrf or ""},
        cookies=client.cookies,
    )
    assert no_origin.status_code == 403
    # And no answer ever invites another origin to read it.
    preflight = httpx.options(
        f"{system.console_url}/api/overview",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    for answer in (foreign, preflight, client.get("/api/overview")):
        assert "access-control-allow-origin" not in answer.headers


def test_the_session_cookie_is_httponly_samesite_strict_and_holds_no_token(client: Browserish):
    answer = client.sign_in()
    assert answer.status_code == 200
    [cookie] = answer.headers.get_list("set-cookie")
    name, _, attributes = cookie.partition(";")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in attributes.split(";")}
    assert name.startswith("lkern_console=")
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/"
    # Served over plain http here; behind https it would be Secure (below).
    assert "secure" not in flags
    # Only an opaque id: no JWT reaches the browser, in the cookie or the body.
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.", cookie + answer.text)
    assert set(answer.json()) == {"signed_in", "email", "csrf_token", "poll_seconds"}
    assert ConsoleSettings(public_origins="https://console.example.com").secure_cookie()


def test_a_state_changing_call_without_the_csrf_token_is_refused(
    system: System, client: Browserish
):
    assert client.sign_in().status_code == 200
    before = system.admin().get(f"{system.url('inventory')}/config/log-level").json()["level"]
    path = "/api/services/inventory/log-level"
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        answer = client.put(path, json={"level": "critical"}, headers=headers)
        assert answer.status_code == 403, headers
        assert "X-CSRF-Token" in answer.json()["detail"]
    refused_sign_out = client.delete("/session")
    assert refused_sign_out.status_code == 403
    after = system.admin().get(f"{system.url('inventory')}/config/log-level").json()["level"]
    assert after == before
    # With it, the same call goes through.
    done = client.changing("PUT", path, json={"level": before})
    assert done.status_code == 200 and done.json()["level"] == before


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.styles: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True
        if tag == "style":
            self.styles.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on") or name == "style"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def test_the_page_sets_a_strict_content_security_policy(system: System):
    page = httpx.get(system.console_url)
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in page.headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert not any(
        "unsafe" in value or "*" in value for values in policy.values() for value in values
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    # The page obeys it: no inline script, style or handler, only files of its own.
    markup = _Markup()
    markup.feed(page.text)
    assert markup.scripts == [{"src": "/static/console.js", "defer": None}]
    assert not markup.inline_script and not markup.styles and not markup.handlers
    assert "http://" not in page.text and "https://" not in page.text
    script = httpx.get(f"{system.console_url}/static/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "content-security-policy" in script.headers
    assert httpx.get(f"{system.console_url}/static/../app.py").status_code == 404


def test_a_non_admin_is_refused_with_a_clear_message(client: Browserish):
    answer = client.sign_in(VIEWER_EMAIL, VIEWER_PASSWORD)
    assert answer.status_code == 403
    assert answer.json()["title"] == "Not an administrator"
    assert answer.json()["detail"] == (
        f"{VIEWER_EMAIL} is signed up as viewer, not admin: the console is for administrators only."
    )
    assert "set-cookie" not in answer.headers
    wrong = client.sign_in(ADMIN_EMAIL, "not the password")
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Incorrect e-mail or password."
    assert client.get("/api/overview").status_code == 401


def test_sign_out_ends_the_login_at_identity(system: System, client: Browserish):
    def live_tokens() -> int:
        [(count,)] = system.sqlite(
            "identity", "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"
        )
        return int(count)

    before = live_tokens()
    assert client.sign_in().status_code == 200
    assert live_tokens() == before + 1
    assert client.get("/api/overview").status_code == 200
    out = client.changing("DELETE", "/session")
    assert out.status_code == 204
    assert live_tokens() == before
    assert client.get("/api/overview").status_code == 401
    assert client.get("/session").json()["signed_in"] is False


def test_lkern_console_refuses_a_malformed_service(tmp_path):
    from click.testing import CliRunner

    from lkern.cli import main

    result = CliRunner().invoke(main, ["console", "--service", "contacts"])
    assert result.exit_code == 2 and "NAME=http(s)://HOST:PORT" in result.output
