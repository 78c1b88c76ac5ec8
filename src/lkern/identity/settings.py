"""Identity's own settings, read like the platform's (``LKERN_`` / ``LKERN_IDENTITY_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from lkern.platform.settings import Environment, Settings


class IdentitySettings(Settings):
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    signing_key: SecretStr | None = Field(
        default=None, description="Identity's Ed25519 private key (PEM); generated if unset."
    )
    admin_email: str | None = Field(default=None, description="Bootstrap admin's e-mail.")
    admin_password: SecretStr | None = Field(
        default=None, description="Bootstrap admin's password."
    )
    login_failure_limit: int = Field(
        default=10, ge=1, description="Failed logins per account and client address, per window."
    )
    login_client_failure_limit: int = Field(
        default=100, ge=1, description="Failed logins per client address (any account), per window."
    )
    login_failure_window_seconds: int = Field(default=900, ge=1)

    def production_problems(self, service: str) -> list[str]:
        problems = super().production_problems(service)
        if self.env is Environment.PRODUCTION and self.signing_key is None:
            problems.append("LKERN_SIGNING_KEY is not set: every replica must sign with one key")
        return problems
