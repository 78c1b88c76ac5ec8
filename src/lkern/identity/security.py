"""Passwords and tokens: argon2 hashes, signed access tokens, opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lkern.identity.keys import SigningKey
from lkern.platform.auth import ALGORITHM
from lkern.platform.ids import new_id

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both failures take as long.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


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
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": str(new_id()),
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def token_digest(token: str) -> str:
    """Refresh tokens are stored only as this digest: a database leak grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()
