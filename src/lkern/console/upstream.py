"""The console's calls to identity and to the services, with the admin's token.

Every call has a short deadline: a service that does not answer in time is
shown as down, never waited for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lkern.console.sessions import Session

logger = logging.getLogger(__name__)

#: Refresh this long before the access token expires, so no call carries a dead one.
REFRESH_MARGIN_SECONDS = 30.0
#: How many rows of each list the page shows per service.
LIST_LIMIT = 20
AUDIT_LIMIT = 10
#: The parts of the overview only some services have.
LISTS = ("dead_letters", "pending_deletions")


class SignInRefused(Exception):
    """Sign-in failed for a reason the admin can act on; the message says which."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class SessionEnded(Exception):
    """Identity no longer honours this session's tokens."""


class Unreachable(Exception):
    """A service (or identity) did not answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


def _problem_detail(response: httpx.Response, fallback: str) -> str:
    try:
        body = response.json()
    except ValueError:
        return fallback
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or fallback)
    return fallback


def _why(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "refused the connection"
    return f"did not answer ({type(exc).__name__})"


class Upstream:
    def __init__(
        self,
        services: Mapping[str, str],
        identity_url: str,
        *,
        timeout_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.services = {name: url.rstrip("/") for name, url in services.items()}
        self.identity_url = identity_url.rstrip("/")
        #: (service, part) pairs a service answered 404 for: it has no such route (a service
        #: that consumes nothing has no dead letters), so it is not asked again. Each poll
        #: counts against the admin's rate limit; questions with a known answer need not.
        self._absent: set[tuple[str, str]] = set()
        self.client = httpx.AsyncClient(
            timeout=timeout_seconds, follow_redirects=False, transport=transport
        )

    async def close(self) -> None:
        await self.client.aclose()

    # Sign-in, refresh, sign-out: identity's token routes.

    async def sign_in(self, email: str, password: str) -> Session:
        try:
            answer = await self.client.post(
                f"{self.identity_url}/api/v1/auth/token",
                data={"username": email, "password": password},
            )
        except httpx.HTTPError as exc:
            raise SignInRefused(f"Identity {_why(exc)}; try again shortly.", 503) from None
        if answer.status_code in {401, 422}:
            raise SignInRefused("Incorrect e-mail or password.")
        if answer.status_code == 429:
            raise SignInRefused(_problem_detail(answer, "Too many sign-in attempts."), 429)
        if answer.status_code != 200:
            raise SignInRefused(
                f"Identity could not sign you in ({answer.status_code}): "
                + _problem_detail(answer, "unexpected answer"),
                503,
            )
        pair = answer.json()
        session = Session(email=email, access_token="", refresh_token="", access_expires_at=0)
        session.set_tokens(pair["access_token"], pair["refresh_token"], pair["expires_in"])
        try:
            me = await self.client.get(
                f"{self.identity_url}/api/v1/users/me", headers=self._bearer(session)
            )
        except httpx.HTTPError as exc:
            await self.sign_out(session)
            raise SignInRefused(f"Identity {_why(exc)}; try again shortly.", 503) from None
        role = me.json().get("role") if me.status_code == 200 else None
        if role != "admin":
            await self.sign_out(session)
            raise SignInRefused(
                f"{email} is signed up as {role or 'an unknown role'}, not admin: "
                "the console is for administrators only.",
                403,
            )
        session.email = me.json().get("email", email)
        return session

    async def sign_out(self, session: Session) -> None:
        """End the login at identity, so the refresh token is worth nothing even if it leaked."""
        try:
            answer = await self.client.post(
                f"{self.identity_url}/api/v1/auth/revoke",
                json={"refresh_token": session.refresh_token},
            )
            if answer.status_code >= 400:
                logger.warning("identity did not revoke the session: %s", answer.status_code)
        except httpx.HTTPError as exc:
            logger.warning("identity unreachable at sign-out: %s", _why(exc))

    async def _refresh(self, session: Session, spent: str) -> None:
        async with session.refreshing:
            if session.access_token != spent:
                return  # another call refreshed while this one waited
            try:
                answer = await self.client.post(
                    f"{self.identity_url}/api/v1/auth/refresh",
                    json={"refresh_token": session.refresh_token},
                )
            except httpx.HTTPError as exc:
                raise Unreachable(f"identity {_why(exc)}") from None
            if answer.status_code != 200:
                raise SessionEnded(_problem_detail(answer, "the session has ended"))
            pair = answer.json()
            session.set_tokens(pair["access_token"], pair["refresh_token"], pair["expires_in"])

    def _bearer(self, session: Session) -> dict[str, str]:
        return {"Authorization": f"Bearer {session.access_token}"}

    # The services' routes.

    def url(self, service: str, path: str) -> str:
        return f"{self.services[service]}{path}"

    async def call(
        self,
        session: Session | None,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Answer:
        """One call; a 401 (token expired early, or revoked) is answered by one refresh."""
        used: str | None = None
        for attempt in range(2):
            headers = {}
            if session is not None:
                if attempt:
                    await self._refresh(session, used or "")
                elif session.access_expires_at - time.monotonic() < REFRESH_MARGIN_SECONDS:
                    await self._refresh(session, session.access_token)
                used = session.access_token
                headers = self._bearer(session)
            try:
                response = await self.client.request(
                    method, self.url(service, path), json=json, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                raise Unreachable(f"{service} {_why(exc)}") from None
            if response.status_code == 401 and session is not None and not attempt:
                continue
            if response.status_code == 401 and session is not None:
                raise SessionEnded(_problem_detail(response, "the session has ended"))
            return Answer(response.status_code, _body(response))
        raise AssertionError("unreachable")

    async def overview(self, session: Session) -> dict[str, Any]:
        services = await asyncio.gather(*(self._service(session, name) for name in self.services))
        return {"services": services}

    async def _service(self, session: Session, name: str) -> dict[str, Any]:
        """Everything the page shows of one service; down when it does not answer."""
        shown: dict[str, Any] = {"name": name, "url": self.services[name]}
        try:
            health = await self.call(None, "GET", name, "/health")
        except Unreachable as exc:
            return {**shown, "state": "down", "error": str(exc)}
        if health.status != 200:
            return {**shown, "state": "down", "error": f"{name} /health answered {health.status}"}
        shown["version"] = health.body.get("version") if isinstance(health.body, dict) else None
        lists: dict[str, str | int] = {"status": "pending", "limit": LIST_LIMIT}
        paths: dict[str, tuple[Session | None, str, dict[str, str | int] | None]] = {
            "readiness": (None, "/health/ready", None),
            "log_level": (session, "/config/log-level", None),
            "dead_letters": (session, "/api/v1/dlq", lists),
            "pending_deletions": (session, "/api/v1/cleanup/pending", {"limit": LIST_LIMIT}),
            "audits": (session, "/api/v1/deletion-audits", {"limit": AUDIT_LIMIT}),
        }
        asked = {
            key: self.call(who, "GET", name, path, params=params)
            for key, (who, path, params) in paths.items()
            if (name, key) not in self._absent
        }
        asked["metrics"] = self._metrics(name)
        results = await asyncio.gather(*asked.values(), return_exceptions=True)
        for key in paths.keys() - asked.keys():
            shown[key] = {"ok": False, "absent": True}
        for key, result in zip(asked, results, strict=True):
            if isinstance(result, SessionEnded):
                raise result
            shown[key] = _part(result)
            if shown[key].get("absent") and key in LISTS:
                self._absent.add((name, key))
        readiness = shown["readiness"]
        ready = readiness.get("ok") and readiness["body"].get("status") == "ready"
        shown["state"] = "up" if ready else "not_ready"
        return shown

    async def _metrics(self, name: str) -> Answer:
        answer = await self.call(None, "GET", name, "/metrics")
        if answer.status != 200 or not isinstance(answer.body, str):
            return answer
        return Answer(200, summarise_metrics(answer.body))


def _body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            return None
    return response.text


def _part(result: Answer | BaseException) -> dict[str, Any]:
    """A part of the overview: its body, or why it is missing (``absent`` where the
    service has no such route, e.g. dead letters of a service that consumes nothing)."""
    if isinstance(result, BaseException):
        return {"ok": False, "error": str(result)}
    if result.status == 404:
        return {"ok": False, "absent": True}
    if result.status == 503 and isinstance(result.body, dict) and "checks" in result.body:
        return {"ok": True, "body": result.body}  # readiness says which check failed
    if result.status >= 400:
        detail = result.body.get("detail") if isinstance(result.body, dict) else None
        return {"ok": False, "error": f"{result.status}: {detail or 'failed'}"}
    return {"ok": True, "body": result.body}


def summarise_metrics(text: str) -> dict[str, float | None]:
    """The figures the page shows, from a service's Prometheus text."""
    backlog: float | None = None
    oldest: float | None = None
    lag_sum = lag_count = 0.0
    outcomes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lkern_outbox_backlog":
                backlog = sample.value
            elif sample.name == "lkern_outbox_oldest_unpublished_age_seconds":
                oldest = sample.value
            elif sample.name == "lkern_consumer_handling_lag_seconds_sum":
                lag_sum += sample.value
            elif sample.name == "lkern_consumer_handling_lag_seconds_count":
                lag_count += sample.value
            elif sample.name == "lkern_consumer_events_total":
                outcome = sample.labels.get("outcome", "")
                outcomes[outcome] = outcomes.get(outcome, 0.0) + sample.value
    return {
        "outbox_backlog": backlog,
        "outbox_oldest_age_seconds": oldest,
        "consumer_lag_seconds": lag_sum / lag_count if lag_count else None,
        "consumed": outcomes.get("processed") if outcomes else None,
        "dead_lettered": outcomes.get("dead_lettered", 0.0) if outcomes else None,
    }
