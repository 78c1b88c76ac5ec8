"""The console's parts without a network: metrics read, sessions kept, tokens refreshed
once however many calls need it, and the origins it answers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from lkern.console.sessions import Session, SessionStore
from lkern.console.settings import ConsoleSettings
from lkern.console.upstream import SessionEnded, Unreachable, Upstream, summarise_metrics

METRICS = """\
# HELP lkern_outbox_backlog Committed events not yet published.
# TYPE lkern_outbox_backlog gauge
lkern_outbox_backlog 7.0
# HELP lkern_outbox_oldest_unpublished_age_seconds Age of the oldest unpublished event.
# TYPE lkern_outbox_oldest_unpublished_age_seconds gauge
lkern_outbox_oldest_unpublished_age_seconds 12.5
# HELP lkern_consumer_events_total Events consumed, by outcome.
# TYPE lkern_consumer_events_total counter
lkern_consumer_events_total{outcome="processed",topic="lkern.contacts.created"} 3.0
lkern_consumer_events_total{outcome="processed",topic="lkern.contacts.updated"} 1.0
lkern_consumer_events_total{outcome="dead_lettered",topic="lkern.contacts.created"} 2.0
# HELP lkern_consumer_handling_lag_seconds From the event's time to its handling.
# TYPE lkern_consumer_handling_lag_seconds histogram
lkern_consumer_handling_lag_seconds_bucket{le="+Inf",topic="lkern.contacts.created"} 3.0
lkern_consumer_handling_lag_seconds_count{topic="lkern.contacts.created"} 3.0
lkern_consumer_handling_lag_seconds_sum{topic="lkern.contacts.created"} 0.6
lkern_consumer_handling_lag_seconds_count{topic="lkern.contacts.updated"} 1.0
lkern_consumer_handling_lag_seconds_sum{topic="lkern.contacts.updated"} 0.2
"""


def test_the_figures_the_page_shows_are_read_from_prometheus_text():
    assert summarise_metrics(METRICS) == {
        "outbox_backlog": 7.0,
        "outbox_oldest_age_seconds": 12.5,
        "consumer_lag_seconds": pytest.approx(0.2),
        "consumed": 4.0,
        "dead_lettered": 2.0,
    }
    # A service that consumes nothing has no consumer figures, not zeros.
    nothing = summarise_metrics("lkern_outbox_backlog 0.0\n")
    assert nothing["consumer_lag_seconds"] is None and nothing["dead_lettered"] is None


def session(expires_in: float = 900) -> Session:
    made = Session(email="a@example.com", access_token="", refresh_token="", access_expires_at=0)
    made.set_tokens("access-0", "refresh-0", expires_in)
    return made


def test_sessions_end_when_idle_and_the_oldest_go_first(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    store = SessionStore(idle_seconds=60, max_sessions=2)
    first, second = store.add(session()), store.add(session())
    assert store.get(first) is not None  # used: now the newest
    third = store.add(session())
    assert store.get(second) is None and store.get(first) and store.get(third)
    now[0] += 61
    assert store.get(first) is None and store.get(None) is None and store.get("forged") is None


class FakeIdentityAndService:
    """Identity's refresh route (rotating, counting) and one service that accepts
    only the newest access token."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.current = "access-0"
        self.refresh_ok = True

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/refresh":
            await asyncio.sleep(0.01)  # long enough for the other calls to queue
            if not self.refresh_ok:
                return httpx.Response(401, json={"detail": "The refresh token was already used"})
            self.refreshes += 1
            self.current = f"access-{self.refreshes}"
            return httpx.Response(
                200,
                json={
                    "access_token": self.current,
                    "refresh_token": f"refresh-{self.refreshes}",
                    "expires_in": 900,
                },
            )
        if request.headers.get("authorization") != f"Bearer {self.current}":
            return httpx.Response(401, json={"detail": "token expired"})
        return httpx.Response(200, json={"level": "info"})


def upstream(fake: FakeIdentityAndService) -> Upstream:
    return Upstream(
        {"contacts": "http://contacts"},
        "http://identity",
        timeout_seconds=1,
        transport=httpx.MockTransport(fake),
    )


async def test_a_token_about_to_expire_is_refreshed_once_for_all_calls():
    fake = FakeIdentityAndService()
    client = upstream(fake)
    signed = session(expires_in=5)  # inside the refresh margin
    answers = await asyncio.gather(
        *(client.call(signed, "GET", "contacts", "/config/log-level") for _ in range(5))
    )
    assert [a.status for a in answers] == [200] * 5
    # Refresh tokens rotate: two refreshes of one token would end the login.
    assert fake.refreshes == 1 and signed.refresh_token == "refresh-1"
    await client.close()


async def test_a_refused_token_is_refreshed_and_the_call_made_again():
    fake = FakeIdentityAndService()
    fake.current = "revoked-elsewhere"  # the service refuses access-0 although it is young
    client = upstream(fake)
    signed = session()
    answer = await client.call(signed, "GET", "contacts", "/config/log-level")
    assert answer.status == 200 and fake.refreshes == 1
    fake.refresh_ok = False
    fake.current = "revoked-again"
    with pytest.raises(SessionEnded):
        await client.call(signed, "GET", "contacts", "/config/log-level")
    await client.close()


async def test_a_service_that_does_not_answer_is_unreachable():
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = Upstream(
        {"contacts": "http://contacts"},
        "http://identity",
        timeout_seconds=1,
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(Unreachable, match="contacts refused the connection"):
        await client.call(None, "GET", "contacts", "/health")
    shown = await client.overview(session())
    assert shown["services"] == [
        {
            "name": "contacts",
            "url": "http://contacts",
            "state": "down",
            "error": "contacts refused the connection",
        }
    ]
    await client.close()


@pytest.mark.parametrize(
    ("settings", "origins"),
    [
        ({}, ["http://127.0.0.1:8099", "http://localhost:8099"]),
        ({"host": "0.0.0.0", "port": 9000}, ["http://localhost:9000", "http://127.0.0.1:9000"]),
        ({"host": "console.internal"}, ["http://console.internal:8099"]),
        (
            {"public_origins": "https://console.example.com/, http://10.0.0.5:8099"},
            ["https://console.example.com", "http://10.0.0.5:8099"],
        ),
    ],
)
def test_the_origins_the_console_answers(settings, origins, monkeypatch):
    for name in ("LKERN_CONSOLE_HOST", "LKERN_CONSOLE_PORT", "LKERN_CONSOLE_PUBLIC_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    assert ConsoleSettings(**settings).origins() == origins


@pytest.mark.parametrize("bad", ["console.example.com", "ftp://x", "https://x/path"])
def test_a_public_origin_must_be_an_origin(bad):
    with pytest.raises(ValueError, match="is not an origin"):
        ConsoleSettings(public_origins=bad)


async def test_a_list_a_service_does_not_have_is_not_asked_for_again():
    asked: list[str] = []

    async def contacts(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path in ("/api/v1/dlq", "/api/v1/cleanup/pending"):
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.url.path == "/metrics":
            return httpx.Response(200, text="lkern_outbox_backlog 0.0\n")
        if request.url.path == "/api/v1/deletion-audits":
            return httpx.Response(200, json={"items": []})
        if request.url.path == "/health/ready":
            return httpx.Response(200, json={"status": "ready", "checks": {"database": "ok"}})
        return httpx.Response(200, json={"version": "0.1.0", "level": "info"})

    client = Upstream(
        {"contacts": "http://contacts"},
        "http://identity",
        timeout_seconds=1,
        transport=httpx.MockTransport(contacts),
    )
    for _ in range(2):
        asked.clear()
        [shown] = (await client.overview(session()))["services"]
        assert shown["state"] == "up" and shown["version"] == "0.1.0"
        assert shown["dead_letters"] == shown["pending_deletions"] == {"ok": False, "absent": True}
        assert shown["audits"] == {"ok": True, "body": {"items": []}}
    assert sorted(asked) == [
        "/api/v1/deletion-audits",
        "/config/log-level",
        "/health",
        "/health/ready",
        "/metrics",
    ]
    await client.close()
