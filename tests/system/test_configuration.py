"""Production mode refuses unsafe configuration; CORS never pairs a wildcard with credentials;
``lkern users create-admin``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from lkern.cli import main
from lkern.contacts.settings import ContactsSettings
from lkern.orders.settings import OrdersSettings
from lkern.platform.app import create_app
from lkern.platform.errors import ConfigurationError
from lkern.platform.settings import Environment, Settings
from lkern.services import SERVICES

SAFE: dict[str, Any] = {
    "env": Environment.PRODUCTION,
    "database_url": "postgresql+asyncpg://db/x",
    "broker_url": "kafka://broker:9092",
    "cors_origins": ["https://app.example.com"],
    "signing_key": "-----BEGIN PRIVATE KEY-----",
    "service_secret": "shared by the services",
}


@pytest.mark.parametrize(
    ("service", "change", "complaint"),
    [
        ("contacts", {"database_url": None}, "DATABASE_URL"),
        ("orders", {"broker_url": "memory://"}, "BROKER_URL"),
        ("contacts", {"cors_origins": ["*"]}, "CORS_ORIGINS"),
        ("identity", {"signing_key": None}, "SIGNING_KEY"),
        ("orders", {"service_secret": None}, "SERVICE_SECRET"),
    ],
)
def test_production_refuses_unsafe_settings(service, change, complaint, tmp_path: Path):
    settings = SERVICES[service].settings_class(data_dir=tmp_path, **{**SAFE, **change})
    assert any(complaint in problem for problem in settings.production_problems(service))
    with pytest.raises(ConfigurationError, match=complaint):
        create_app(SERVICES[service], settings)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_production_accepts_a_complete_configuration(service: str, tmp_path: Path):
    settings_class = SERVICES[service].settings_class
    assert settings_class(data_dir=tmp_path, **SAFE).production_problems(service) == []
    assert settings_class(data_dir=tmp_path).production_problems(service) == []  # development


def test_service_settings_follow_the_platform_rules(monkeypatch, tmp_path: Path):
    """A service's own setting is read as LKERN_<NAME> and, winning, LKERN_<SERVICE>_<NAME>;
    the platform's settings know nothing of it."""
    monkeypatch.setenv("LKERN_CONTACTS_GRPC_TARGET", "everyone:1")
    assert OrdersSettings.of(SERVICES["orders"].load_settings()).contacts_grpc_target == (
        "everyone:1"
    )
    monkeypatch.setenv("LKERN_ORDERS_CONTACTS_GRPC_TARGET", "orders:2")
    assert OrdersSettings.of(SERVICES["orders"].load_settings()).contacts_grpc_target == "orders:2"
    monkeypatch.setenv("LKERN_CONTACTS_PHONE_DEFAULT_REGION", "SK")
    contacts = ContactsSettings.of(SERVICES["contacts"].load_settings())
    assert contacts.phone_default_region == "SK"
    assert not hasattr(SERVICES["orders"].load_settings(), "phone_default_region")
    for name in ("contacts_grpc_target", "phone_default_region", "signing_key", "admin_email"):
        assert name not in Settings.model_fields


def test_a_service_is_not_given_settings_of_another_class(tmp_path: Path):
    with pytest.raises(TypeError, match="IdentitySettings"):
        create_app(SERVICES["identity"], Settings(data_dir=tmp_path), migrate=False)


def test_serve_exits_with_the_reasons(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LKERN_ENV", "production")
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["serve", "contacts"])
    assert result.exit_code == 1
    assert "refuses to start in production" in result.output and "DATABASE_URL" in result.output


async def test_cors_never_sends_credentials_to_a_wildcard(tmp_path: Path):
    cases: list[tuple[list[str], str | None]] = [
        (["*"], None),
        (["https://app.example.com"], "true"),
    ]
    for origins, credentials in cases:
        settings = SERVICES["contacts"].settings_class(data_dir=tmp_path, cors_origins=origins)
        app = create_app(SERVICES["contacts"], settings, migrate=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.options(
                "/api/v1/contacts",
                headers={
                    "Origin": "https://app.example.com",
                    "Access-Control-Request-Method": "GET",
                },
            )
        assert response.headers.get("access-control-allow-credentials") == credentials


def test_create_admin(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path))
    args = [
        "users",
        "create-admin",
        "--email",
        "Boss@Example.com",
        "--password",
        "long enough secret",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "admin boss@example.com created" in first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "belongs to user" in again.output
    short = CliRunner().invoke(
        main, ["users", "create-admin", "--email", "x@example.com", "--password", "short"]
    )
    assert short.exit_code == 2
