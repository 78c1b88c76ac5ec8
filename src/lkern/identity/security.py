"""Passwords and tokens: argon2 hashes, signed access tokens, opaque refresh tokens."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lkern.identity.keys import SigningKey
from lkern.platform.auth import ALGORITHM
from lkern.platform.ids import new_id

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so both failures take as long;
    made as identity starts (:func:`warm_up`), not at import, where every process
    that imports the service registry paid for it."""
    return _hasher.hash("not a password anyone has")


def _yield_to_requests() -> None:
    # The nice value is per thread on Linux, and argon2's own lane threads inherit
    # it: the event loop then wins the CPU over hashing (loop lag during a burst of
    # logins on a busy 2-core machine: p99 75 ms at nice 0, 15 ms at nice 10).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# argon2 is tens of milliseconds of CPU and releases the GIL: it runs in threads
# of its own, at most half the cores, so the event loop keeps serving, and a
# burst of logins takes neither the loop nor the default executor's threads.
_HASHING = ThreadPoolExecutor(
    max_workers=max(1, (os.cpu_count() or 2) // 2),
    thread_name_prefix="argon2",
    initializer=_yield_to_requests,
)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        verified = _hasher.verify(password_hash or _dummy_hash(), password)
        return verified and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def warm_up() -> None:
    """Make the unknown e-mail's hash as identity starts, so no login waits for it."""
    await asyncio.get_running_loop().run_in_executor(_HASHING, _dummy_hash)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(
        _HASHING, _verify, password_hash, password
    )


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def access_token(
    key: SigningKey, *, subject: str, role: str, issuer: str, audience: str, now: datetime, ttl: int
) -> str:
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "role": role,
        # To the microsecond (RFC 7519 allows a fraction): a token issued in the same
        # second as a revocation of its user, just after it, is still told apart.
        "iat": round(now.timestamp(), 6),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": str(new_id()),
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def token_digest(token: str) -> str:
    """Refresh tokens are stored only as this digest: a database leak grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()
