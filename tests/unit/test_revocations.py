"""The verifier's rule for revoked users (§9): a token issued before its user's change
is refused, one issued after it stands, whatever second both fall in."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from lkern.events.identity import UserChange
from lkern.platform.auth import Principal, Revocations, Role, StaticKeys, TokenVerifier
from lkern.platform.db import utcnow
from lkern.platform.errors import Unauthorized
from lkern.platform.revocations import refusal_code
from lkern.services import SERVICES
from tests.support.tokens import AUDIENCE, ISSUER, TEST_KEY, mint

USER = "0190f3c2-0000-7000-8000-000000000001"


def verifier() -> TokenVerifier:
    return TokenVerifier(
        StaticKeys({TEST_KEY.kid: TEST_KEY.public}), issuer=ISSUER, audience=AUDIENCE
    )


async def refused_code(checker: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        await checker.verify(token)
    return refused.value.code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (UserChange.ROLE_CHANGED, "TOKEN_REVOKED"),
        (UserChange.DEACTIVATED, "USER_NOT_ACTIVE"),
        (UserChange.DELETED, "USER_NOT_ACTIVE"),
        (UserChange.PERMANENTLY_DELETED, "USER_NOT_ACTIVE"),
    ],
)
async def test_a_token_issued_before_its_users_change_is_refused(change, code):
    checker = verifier()
    before = mint("member", subject=USER, issued_at=utcnow() - timedelta(seconds=5))
    checker.revocations.note(USER, utcnow().timestamp(), refusal_code(change))

    assert await refused_code(checker, before) == code
    after = mint("viewer", subject=USER)
    assert (await checker.verify(after)).role == "viewer"


async def test_a_token_verified_before_the_change_is_refused_after_it():
    checker = verifier()
    token = mint("admin", subject=USER)
    assert (await checker.verify(token)).subject == USER  # now remembered as verified

    checker.revocations.note(USER, utcnow().timestamp() + 0.001, "TOKEN_REVOKED")

    assert await refused_code(checker, token) == "TOKEN_REVOKED"


async def test_the_same_second_is_told_apart_to_the_microsecond():
    checker = verifier()
    change = utcnow().replace(microsecond=500_000)
    checker.revocations.note(USER, change.timestamp(), "TOKEN_REVOKED")
    just_before = mint("member", subject=USER, issued_at=change - timedelta(microseconds=1000))
    just_after = mint("viewer", subject=USER, issued_at=change + timedelta(microseconds=1000))
    at_once = mint("viewer", subject=USER, issued_at=change)
    seconds = {
        int(jwt.decode(t, options={"verify_signature": False})["iat"])
        for t in (just_before, just_after)
    }
    assert seconds == {int(change.timestamp())}, "both in the revocation's own second"

    assert await refused_code(checker, just_before) == "TOKEN_REVOKED"
    assert (await checker.verify(just_after)).role == "viewer"
    assert (await checker.verify(at_once)).role == "viewer"


async def test_other_users_tokens_stand():
    checker = verifier()
    checker.revocations.note(USER, utcnow().timestamp(), "USER_NOT_ACTIVE")
    other = mint("member", issued_at=utcnow() - timedelta(seconds=5))
    assert (await checker.verify(other)).role == "member"


def test_a_later_revocation_wins_and_an_earlier_one_changes_nothing():
    revocations = Revocations()
    revocations.note(USER, 100.0, "TOKEN_REVOKED")
    revocations.merge({USER: (200.0, "USER_NOT_ACTIVE")})
    revocations.note(USER, 150.0, "TOKEN_REVOKED")  # late, out of order
    revocations.merge({USER: (120.0, "TOKEN_REVOKED")})  # a reload that had not seen 200 yet

    def principal(issued_at: float) -> Principal:
        return Principal(USER, Role.MEMBER, "jti", issued_at=issued_at)

    assert revocations.refusal(principal(199.0)) == "USER_NOT_ACTIVE"
    assert revocations.refusal(principal(200.0)) is None
    assert len(revocations) == 1


def test_identity_signs_iat_with_its_fraction():
    issued = utcnow().replace(microsecond=123_456)
    claims = jwt.decode(mint(issued_at=issued), options={"verify_signature": False})
    assert claims["iat"] == pytest.approx(issued.timestamp(), abs=1e-6)
    assert isinstance(claims["exp"], int)


def test_every_service_but_identity_consumes_user_changes():
    topic = "lkern.identity.user_changed"
    for name, definition in SERVICES.items():
        handlers = definition.event_handlers
        if name == "identity":
            assert handlers is None, "identity records its own changes as it makes them"
            assert topic in {cls.event_type for cls in definition.produces}
        else:
            assert handlers is not None and topic in handlers.topics, name
    # Orders keeps its own handlers besides the platform's.
    orders = SERVICES["orders"].event_handlers
    assert orders is not None and "lkern.contacts.updated" in orders.topics
