"""Rate limits (§9): per user, per client when anonymous, failed logins apart; shared in Redis."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from lkern.platform.app import create_app
from lkern.services import SERVICES
from tests.api.test_contacts import assert_problem
from tests.conftest import IN_CI, settings_for
from tests.support.processes import free_port
from tests.support.tokens import mint, trust_test_key

REDIS_URL = "redis://127.0.0.1:6379/15"


def app_for(service: str, tmp_path: Path, **settings: Any) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"
    definition = SERVICES[service]
    app = create_app(definition, settings_for(definition, tmp_path, url, **settings))
    trust_test_key(app.state.runtime)
    return app


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_per_user_limit_with_retry_after(tmp_path):
    app = app_for("contacts", tmp_path, rate_limit_requests=3, rate_limit_window_seconds=60)
    ada, bob = mint("viewer"), mint("viewer")
    async with app.router.lifespan_context(app), client_of(app) as client:
        for _ in range(3):
            response = await client.get(
                "/api/v1/contacts", headers={"Authorization": f"Bearer {ada}"}
            )
            assert response.status_code == 200
        limited = await client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {ada}"})
        problem = assert_problem(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "at most 3 per 60 s" in problem["detail"]
        other = await client.get("/api/v1/contacts", headers={"Authorization": f"Bearer {bob}"})
        assert other.status_code == 200  # another user has a budget of their own
        assert (await client.get("/health")).status_code == 200  # probes are never limited


async def test_public_routes_are_limited_per_client(tmp_path):
    app = app_for("identity", tmp_path, anonymous_rate_limit_requests=2)
    async with app.router.lifespan_context(app), client_of(app) as client:
        statuses = [(await client.get("/.well-known/jwks.json")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_failed_logins_are_limited_apart(tmp_path):
    app = app_for(
        "identity",
        tmp_path,
        admin_email="a@example.com",
        admin_password="the right password",
        login_failure_limit=3,
    )
    async with app.router.lifespan_context(app), client_of(app) as client:
        for _ in range(3):
            wrong = await client.post(
                "/api/v1/auth/token", data={"username": "a@example.com", "password": "wrong one!"}
            )
            assert wrong.status_code == 401
        right = await client.post(
            "/api/v1/auth/token",
            data={"username": "a@example.com", "password": "the right password"},
        )
        assert_problem(right, 429, "LOGIN_RATE_LIMITED")
        assert int(right.headers["retry-after"]) > 0


@pytest.fixture
async def redis_available() -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"this machine's Redis is expected in CI: {exc!r}")
        pytest.skip(f"no Redis: {exc!r}")
    finally:
        await client.aclose()


async def test_limits_are_shared_by_replicas_through_redis(tmp_path, redis_available):
    replicas = [
        app_for("contacts", tmp_path / str(n), redis_url=REDIS_URL, rate_limit_requests=4)
        for n in range(2)
    ]
    headers = {"Authorization": f"Bearer {mint('viewer', subject=str(uuid.uuid4()))}"}
    statuses = []
    async with (
        replicas[0].router.lifespan_context(replicas[0]),
        replicas[1].router.lifespan_context(replicas[1]),
        client_of(replicas[0]) as first,
        client_of(replicas[1]) as second,
    ):
        for n in range(6):
            replica = first if n % 2 else second
            statuses.append((await replica.get("/api/v1/contacts", headers=headers)).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_redis_down_lets_requests_through(tmp_path):
    app = app_for(
        "contacts", tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_requests=1
    )
    async with app.router.lifespan_context(app), client_of(app) as client:
        for _ in range(3):
            response = await client.get(
                "/api/v1/contacts", headers={"Authorization": f"Bearer {mint()}"}
            )
            assert response.status_code == 200
