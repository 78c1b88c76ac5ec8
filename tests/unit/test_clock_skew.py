"""Clocks disagree a little: tokens and service credentials allow a small skew both ways."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from lkern.platform.auth import ALGORITHM, StaticKeys, TokenVerifier
from lkern.platform.errors import Unauthorized
from lkern.platform.grpc import credentials
from lkern.platform.settings import Settings
from tests.support.tokens import AUDIENCE, ISSUER, TEST_KEY

METHOD = "/lkern.proto.contacts.v1.ContactsService/GetContact"


def verifier() -> TokenVerifier:
    """Verifying as a service does with the default settings."""
    return TokenVerifier(
        StaticKeys({TEST_KEY.kid: TEST_KEY.public}),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway=Settings().clock_skew_seconds,
    )


def token(**offsets: int) -> str:
    """A token whose ``iat``/``exp``/``nbf`` are now plus the given seconds."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "role": "viewer",
        "jti": str(uuid.uuid4()),
        "iat": now + offsets.pop("iat", 0),
        "exp": now + offsets.pop("exp", 900),
    }
    claims |= {name: now + offset for name, offset in offsets.items()}
    return jwt.encode(claims, TEST_KEY.private, algorithm=ALGORITHM, headers={"kid": TEST_KEY.kid})


def test_the_default_skew_is_thirty_seconds():
    assert Settings().clock_skew_seconds == 30


@pytest.mark.parametrize(
    "offsets",
    [{"iat": 20}, {"nbf": 20}, {"iat": -900, "exp": -20}],
    ids=["issued-20s-ahead", "valid-from-20s-ahead", "expired-20s-ago"],
)
async def test_tokens_within_the_skew_verify(offsets):
    assert (await verifier().verify(token(**offsets))).subject == "user-1"


@pytest.mark.parametrize(
    ("offsets", "code"),
    [
        ({"iat": 60}, "INVALID_TOKEN"),
        ({"nbf": 60}, "INVALID_TOKEN"),
        ({"iat": -900, "exp": -60}, "TOKEN_EXPIRED"),
    ],
    ids=["issued-60s-ahead", "valid-from-60s-ahead", "expired-60s-ago"],
)
async def test_tokens_beyond_the_skew_are_refused(offsets, code):
    with pytest.raises(Unauthorized) as refused:
        await verifier().verify(token(**offsets))
    assert refused.value.code == code


async def test_a_remembered_token_is_not_kept_past_expiry_and_skew():
    check = verifier()
    expired_lately = token(iat=-900, exp=-20)
    await check.verify(expired_lately)
    assert check._verified[expired_lately][1] == pytest.approx(time.time() + 10, abs=2)


@pytest.mark.parametrize("offset", [-20, 20])
def test_credentials_within_the_skew_verify(offset):
    now = 1_000_000.0
    issued = credentials.issue("s3cret", "orders", METHOD, now=now + offset)
    assert credentials.verify("s3cret", issued, METHOD, now=now, skew=30) == "orders"


@pytest.mark.parametrize("issued_at", [1_000_060.0, 1_000_000.0 - credentials.MAX_AGE_SECONDS - 60])
def test_credentials_beyond_the_skew_are_refused(issued_at):
    issued = credentials.issue("s3cret", "orders", METHOD, now=issued_at)
    with pytest.raises(credentials.InvalidCredential):
        credentials.verify("s3cret", issued, METHOD, now=1_000_000.0, skew=30)


def test_a_credential_is_bound_to_its_method():
    issued = credentials.issue("s3cret", "orders", METHOD, now=1_000_000)
    other = "/lkern.proto.contacts.v1.ContactsService/GetContactsByIds"
    with pytest.raises(credentials.InvalidCredential, match="issued for another method"):
        credentials.verify("s3cret", issued, other, now=1_000_000)
    with pytest.raises(credentials.InvalidCredential):
        credentials.verify("s3cret", issued.replace("GetContact", "GetContactsByIds"), other)
