"""Every route of every service, read from its OpenAPI document: who may call it.

A route added later is checked here without anyone writing a test for it:
unless it is on the public list, it answers 401 without a token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from lkern.identity.schemas import UserCreate
from lkern.identity.service import create_user
from lkern.platform.db import utcnow
from lkern.services import SERVICES
from tests.conftest import Fleet
from tests.support.tokens import mint

PUBLIC = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    # The refresh token in the body is the credential, as for refresh.
    ("POST", "/api/v1/auth/revoke"),
    # A signed, time-limited link to a file (§8): the signature is the permission.
    ("GET", "/files/{key}"),
}
READ = {"GET", "HEAD"}


def admin_only(method: str, path: str) -> bool:
    return (
        path.endswith("/permanent")
        or path.startswith(("/api/v1/deletion-audits", "/api/v1/dlq", "/api/v1/cleanup"))
        or (method, path) == ("PUT", "/config/log-level")
        or (path.startswith("/api/v1/users") and path != "/api/v1/users/me")
    )


def operations(app: Any) -> list[tuple[str, str]]:
    schema = app.openapi()
    return sorted(
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method in {"get", "post", "put", "patch", "delete"}
    )


#: Parameters that are not UUIDs, and a value of each the route matches.
NOT_UUIDS = {"{part_id}": "ABCD", "{box_no}": "1"}


def concrete(path: str) -> str:
    """The path with every parameter filled by some id."""
    parts = [
        NOT_UUIDS.get(part, str(uuid.uuid4())) if part.startswith("{") else part
        for part in path.split("/")
    ]
    return "/".join(parts)


async def identity_users(runtime: Any) -> dict[str, str]:
    """A user of each role in identity, which accepts only tokens of users it has."""
    subjects = {}
    for role in ("viewer", "member", "admin"):
        user = await create_user(
            runtime.unit_of_work(),
            UserCreate.model_validate(
                {
                    "email": f"{role}-{uuid.uuid4().hex[:8]}@example.com",
                    "full_name": role,
                    "password": "a long enough password",
                    "role": role,
                }
            ),
        )
        subjects[role] = str(user.id)
    return subjects


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_every_route_demands_the_right_role(service: str, fleet: Fleet):
    under_test = await fleet.start(service)
    subjects = await identity_users(under_test.runtime) if service == "identity" else {}
    assert await assert_every_route_demands_the_right_role(under_test.app, subjects) >= 8


async def assert_every_route_demands_the_right_role(
    app: Any, subjects: Mapping[str, str] | None = None
) -> int:
    """Every operation in the app's OpenAPI document, anonymously and with each role
    (as the user ``subjects`` names for it, if any); returns how many protected
    operations were checked."""
    subjects = subjects or {}
    checked = 0
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path in operations(app):
            url = concrete(path)
            body: dict[str, Any] | None = None if method in READ else {}
            anonymous = await client.request(method, url, json=body)
            if (method, path) in PUBLIC:
                assert anonymous.status_code not in (401, 403), (method, path)
                continue
            checked += 1
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.json()["code"] == "NOT_AUTHENTICATED"
            for role in ("viewer", "member", "admin"):
                answer = await client.request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {mint(role, subject=subjects.get(role))}"},
                )
                needed = (
                    "admin"
                    if admin_only(method, path)
                    else ("viewer" if method in READ else "member")
                )
                allowed = ["viewer", "member", "admin"].index(role) >= [
                    "viewer",
                    "member",
                    "admin",
                ].index(needed)
                if allowed:
                    assert answer.status_code not in (401, 403), (method, path, role, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, role, answer.status_code)
                    assert answer.json()["code"] == "FORBIDDEN"
            # Every protected route documents what it can answer.
            documented = app.openapi()["paths"][path][method.lower()]["responses"]
            assert {"401", "403"} <= set(documented), (method, path)
    return checked


@pytest.mark.parametrize(
    "service", sorted(name for name, d in SERVICES.items() if d.token_keys is None)
)
async def test_bad_tokens_are_refused_offline(service: str, fleet: Fleet):
    """Services verifying identity's tokens refuse bad ones without asking identity."""
    import jwt

    from tests.support.tokens import AUDIENCE, ISSUER, TEST_KEY

    app = (await fleet.start(service)).app
    now = int(utcnow().timestamp())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u",
        "role": "admin",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
    }

    def signed(**changes: Any) -> str:
        return jwt.encode(
            {**claims, **changes},
            TEST_KEY.private,
            algorithm="EdDSA",
            headers={"kid": TEST_KEY.kid},
        )

    good = signed()
    head, body, signature = good.split(".")
    cases = {
        "expired": signed(exp=now - 10),
        "wrong audience": signed(aud="elsewhere"),
        "tampered": f"{head}.{body[:-4]}AAAA.{signature}",
        "alg none": jwt.encode(claims, key="", algorithm="none"),
        "unknown kid": jwt.encode(
            claims, TEST_KEY.private, algorithm="EdDSA", headers={"kid": "nobody"}
        ),
    }
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        url = "/config/log-level"  # every service has it, for any role
        assert (
            await client.get(url, headers={"Authorization": f"Bearer {good}"})
        ).status_code == 200
        for name, token in cases.items():
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, name
