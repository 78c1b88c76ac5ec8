"""Who is calling: tokens verified offline, roles, and the dependencies that demand them.

Identity signs access tokens (EdDSA, with a ``kid``); every service verifies
them with identity's public keys from ``/.well-known/jwks.json``, cached and
fetched again when a token names a key not seen yet. Only EdDSA is accepted,
so an unsigned (``alg: none``) or HMAC-forged token never verifies.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from lkern.platform.addresses import client_address as client_address
from lkern.platform.errors import Forbidden, ServiceUnavailable, Unauthorized

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# An unknown kid triggers a fetch at most this often: forged kids cannot make
# every request call identity.
JWKS_REFETCH_SECONDS = 30.0
# Verified tokens are remembered until they expire, so a client pays for one
# signature check per token rather than one per request. Only tokens that
# verified are kept, so forged ones cannot fill it.
VERIFIED_TOKENS_KEPT = 10_000


class Role(StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role
    token_id: str
    #: The token's ``iat``, in seconds since the epoch (fractional: identity signs
    #: microseconds, so a token issued just after a revocation is told from one before).
    issued_at: float = 0.0


#: Why a revoked user's earlier token is refused, by the problem code answered.
REVOCATION_DETAILS = {
    "TOKEN_REVOKED": "The token was issued before its user's role changed; refresh it "
    "for a token of the current role.",
    "USER_NOT_ACTIVE": "The token's user is deleted or deactivated.",
}


class Revocations:
    """Users whose tokens issued before an instant are refused (§9), by subject.

    Filled from the service's ``token_revocations`` table by a worker (see
    :mod:`lkern.platform.revocations`); the check on a request is one look-up.
    Each entry is the instant (seconds since the epoch) and the problem code of
    the refusal (a key of :data:`REVOCATION_DETAILS`).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, str]] = {}

    def refusal(self, principal: Principal) -> str | None:
        """The problem code refusing the principal's token, or None when it stands."""
        entry = self._entries.get(principal.subject)
        if entry is None or principal.issued_at >= entry[0]:
            return None
        return entry[1]

    def note(self, subject: str, not_before: float, code: str) -> None:
        """A revocation, in force at once; a later one wins over an earlier."""
        known = self._entries.get(subject)
        if known is None or not_before > known[0]:
            self._entries[subject] = (not_before, code)

    def merge(self, entries: dict[str, tuple[float, str]]) -> None:
        """What the database holds. Merged rather than replacing, since a revocation
        noted here may not have been visible to the read that produced these."""
        for subject, (not_before, code) in entries.items():
            self.note(subject, not_before, code)

    def __len__(self) -> int:
        return len(self._entries)


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": ALGORITHM}


def key_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("only Ed25519 keys are used")
    x = str(jwk["x"])
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


class KeySource(Protocol):
    async def key(self, kid: str) -> Ed25519PublicKey | None: ...


class StaticKeys:
    """Keys known in-process (identity verifying its own tokens, tests)."""

    def __init__(self, keys: dict[str, Ed25519PublicKey]) -> None:
        self._keys = keys

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)


class JwksKeys:
    """Identity's public keys, fetched from its JWKS route and cached."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")
        self._reachable = True
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        if kid in self._keys:
            return self._keys[kid]
        # Requests that arrive while a fetch is in flight wait for it.
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > JWKS_REFETCH_SECONDS:
                await self._fetch()
        key = self._keys.get(kid)
        if key is None and not self._reachable:
            # The token may well be good: identity could not be asked. That is an
            # outage of a dependency (503, try again), not a bad token (401).
            raise ServiceUnavailable(
                "Identity's signing keys cannot be fetched; try again shortly.",
                code="IDENTITY_UNAVAILABLE",
                retry_after=1,
            )
        return key

    async def _fetch(self) -> None:
        # A failed fetch (identity still starting) may be retried after a second.
        self._fetched_at = time.monotonic() - JWKS_REFETCH_SECONDS + 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                keys = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            logger.warning("cannot fetch JWKS from %s: %r", self.url, exc)
            self._reachable = False
            return
        self._keys = {str(jwk["kid"]): key_from_jwk(jwk) for jwk in keys if "kid" in jwk}
        self._fetched_at = time.monotonic()
        self._reachable = True


class TokenVerifier:
    """Checks tokens; ``leeway`` is how far identity's clock may be off from ours, either
    way, in seconds (``iat`` and ``nbf`` a little ahead, ``exp`` a little behind)."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: float = 0.0,
        revocations: Revocations | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.revocations = revocations if revocations is not None else Revocations()
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        principal = await self._verified_principal(token)
        # After the cache: a token verified before its user was revoked is refused too.
        refused = self.revocations.refusal(principal)
        if refused is not None:
            raise _invalid(REVOCATION_DETAILS.get(refused, "The token is revoked."), code=refused)
        return principal

    async def _verified_principal(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires_at = known
            if time.time() < expires_at:
                return principal
            self._verified.pop(token, None)
        principal, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = (principal, expires_at)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("The token is malformed.") from None
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise _invalid("The token is not signed with a key of ours.")
        key = await self.keys.key(header["kid"])
        if key is None:
            raise _invalid("The token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
            role = Role(str(claims.get("role")))
            issued_at = float(claims["iat"])
        except jwt.ExpiredSignatureError:
            raise _invalid("The token has expired.", code="TOKEN_EXPIRED") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _invalid("The token is invalid.") from None
        principal = Principal(
            subject=str(claims["sub"]), role=role, token_id=str(claims["jti"]), issued_at=issued_at
        )
        return principal, float(claims["exp"]) + self.leeway


def _invalid(detail: str, *, code: str = "INVALID_TOKEN") -> Unauthorized:
    return Unauthorized(
        detail, code=code, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


current_token: ContextVar[str | None] = ContextVar("lkern_token", default=None)

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a request's principal is kept once its token has been verified, so the
# route's and the router's checks verify and rate-limit it once between them.
_PRINCIPAL_KEY = "lkern.principal"


async def _authenticate(request: Request) -> Principal:
    known: Principal | None = request.scope.get(_PRINCIPAL_KEY)
    if known is not None:
        return known
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "A bearer token is required.",
            code="NOT_AUTHENTICATED",
            headers={"WWW-Authenticate": "Bearer"},
        )
    runtime = request.app.state.runtime
    principal: Principal = await runtime.verifier.verify(token)
    await runtime.limiter.check(f"user:{principal.subject}", runtime.user_limit)
    # Calls to other services made for this request carry the user along.
    current_token.set(token)
    request.scope[_PRINCIPAL_KEY] = principal
    return principal


class BearerAuthorization(HTTPBearer):
    """The bearer token check and the role it demands, as one dependency.

    Being an ``HTTPBearer``, it shows in the OpenAPI document as the bearer
    scheme; doing the whole check itself rather than through sub-dependencies
    spares FastAPI two resolution steps on every request. Without a role, reads
    need a viewer and writes a member.
    """

    def __init__(self, role: Role | None = None) -> None:
        super().__init__(auto_error=False, description="An access token from identity.")
        self.role = role

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await _authenticate(request)
        needed = self.role or (Role.VIEWER if request.method in _READS else Role.MEMBER)
        if not principal.role.allows(needed):
            raise Forbidden(f"This needs the {needed} role; you have {principal.role}.")
        return principal


#: The default of every non-public route: viewers read, members write.
authorize_by_method = BearerAuthorization()
_REQUIREMENTS = {role: BearerAuthorization(role) for role in Role}
#: Any valid token, whatever its role.
current_principal = _REQUIREMENTS[Role.VIEWER]


def require(role: Role) -> BearerAuthorization:
    """A dependency that lets through callers with ``role`` or a higher one."""
    return _REQUIREMENTS[role]


async def limit_by_client(request: Request) -> None:
    """Public routes are limited per client address."""
    runtime = request.app.state.runtime
    await runtime.limiter.check(f"ip:{client_address(request)}", runtime.anonymous_limit)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
