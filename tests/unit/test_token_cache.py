"""Verified tokens are remembered, but never past their expiry."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lkern.platform.auth import StaticKeys, TokenVerifier
from lkern.platform.errors import Unauthorized
from tests.support.tokens import AUDIENCE, ISSUER, TEST_KEY, mint


class CountingKeys(StaticKeys):
    def __init__(self) -> None:
        super().__init__({TEST_KEY.kid: TEST_KEY.public})
        self.lookups = 0

    async def key(self, kid: str) -> Ed25519PublicKey | None:
        self.lookups += 1
        return await super().key(kid)


async def test_a_token_is_checked_once_then_remembered():
    keys = CountingKeys()
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    token = mint("member", subject="user-1")

    first, second = await verifier.verify(token), await verifier.verify(token)

    assert first == second and first.subject == "user-1"
    assert keys.lookups == 1


async def test_a_remembered_token_still_expires():
    verifier = TokenVerifier(CountingKeys(), issuer=ISSUER, audience=AUDIENCE)
    token = mint("member", ttl=1)
    await verifier.verify(token)
    await asyncio.sleep(1.1)

    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token)
    assert caught.value.code == "TOKEN_EXPIRED"


async def test_a_forged_token_is_never_remembered():
    keys = CountingKeys()
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    header, payload, signature = mint("member").split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await verifier.verify(forged)
    # Checked afresh each time: neither remembered as good nor as bad.
    assert keys.lookups == 2
