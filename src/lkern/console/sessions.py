"""Signed-in sessions, held in this process only: the tokens never reach the browser.

The browser holds an opaque session id in an ``HttpOnly`` cookie; everything
else (the admin's access and refresh tokens, the CSRF token) stays here.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class Session:
    email: str
    access_token: str
    refresh_token: str
    #: ``time.monotonic()`` when the access token expires.
    access_expires_at: float
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Looked up at each call, not bound once: a test's clock applies to it as well.
    last_seen: float = field(default_factory=lambda: time.monotonic())
    #: Refresh tokens rotate: two refreshes at once would spend one token twice,
    #: which identity takes for theft and ends the login.
    refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def set_tokens(self, access_token: str, refresh_token: str, expires_in: float) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.access_expires_at = time.monotonic() + expires_in

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and secrets.compare_digest(presented, self.csrf_token)


class SessionStore:
    def __init__(self, *, idle_seconds: float, max_sessions: int) -> None:
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def add(self, session: Session) -> str:
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = session
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_seconds:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: str | None) -> Session | None:
        return self._sessions.pop(session_id, None) if session_id else None

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.idle_seconds
        for session_id in [s for s, v in self._sessions.items() if v.last_seen < cutoff]:
            del self._sessions[session_id]
