"""Access tokens for tests: minted with a test key that the services under test trust."""

from __future__ import annotations

import uuid
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from lkern.identity.keys import SigningKey, _kid
from lkern.identity.security import access_token
from lkern.platform.auth import KeySource, StaticKeys, TokenVerifier
from lkern.platform.db import utcnow
from lkern.platform.runtime import ServiceRuntime

_PRIVATE = Ed25519PrivateKey.generate()
TEST_KEY = SigningKey(_kid(_PRIVATE.public_key()), _PRIVATE)
#: The same key as PEM, for processes: identity signs with it (LKERN_SIGNING_KEY).
TEST_KEY_PEM = _PRIVATE.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
ISSUER, AUDIENCE = "lkern-identity", "lkern"


def mint(
    role: str = "admin",
    *,
    subject: str | None = None,
    ttl: int = 3600,
    issued_at: datetime | None = None,
) -> str:
    return access_token(
        TEST_KEY,
        subject=subject or str(uuid.uuid4()),
        role=role,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=issued_at or utcnow(),
        ttl=ttl,
    )


def bearer(role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(role)}"}


def minted_token_verifier() -> TokenVerifier:
    """A verifier of the tokens ``mint`` makes."""
    return TokenVerifier(
        StaticKeys({TEST_KEY.kid: TEST_KEY.public}), issuer=ISSUER, audience=AUDIENCE
    )


class _AlsoTheTestKey:
    """A service's own keys, and the test key besides."""

    def __init__(self, own: KeySource) -> None:
        self._own = own

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        return TEST_KEY.public if kid == TEST_KEY.kid else await self._own.key(kid)


def trust_test_key(runtime: ServiceRuntime) -> None:
    """Make a service under test accept tokens of the test key: instead of identity's
    JWKS, or besides its own keys for a service that has them (identity)."""
    keys: KeySource = StaticKeys({TEST_KEY.kid: TEST_KEY.public})
    if runtime.definition.token_keys is not None:
        keys = _AlsoTheTestKey(runtime.verifier.keys)
    runtime.verifier = TokenVerifier(
        keys, issuer=ISSUER, audience=AUDIENCE, revocations=runtime.revocations
    )
