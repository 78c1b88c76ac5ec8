"""The console's own settings (``LKERN_CONSOLE_…``); the services it shows are given
by whoever starts it (``lkern run`` knows them, ``lkern console --service`` names them)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

WILDCARDS = {"0.0.0.0", "::", ""}


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LKERN_CONSOLE_", env_file=".env", extra="ignore", validate_default=True
    )

    host: str = Field(default="127.0.0.1", description="Address the console binds.")
    port: int = Field(default=8099, ge=1, le=65535)
    public_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The origins browsers use (comma-separated, e.g. "
        "https://console.example.com), needed behind a proxy or on a wildcard address; "
        "by default http://HOST:PORT (and localhost for 127.0.0.1).",
    )
    session_idle_seconds: int = Field(
        default=8 * 3600, ge=60, description="A session unused this long is signed out."
    )
    max_sessions: int = Field(default=1000, ge=1, description="Oldest sessions go beyond this.")
    upstream_timeout_seconds: float = Field(
        default=3.0, gt=0, description="How long a service may take before it is shown as down."
    )
    poll_seconds: float = Field(default=3.0, ge=1, description="How often the page refreshes.")

    @field_validator("public_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_origins")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path.strip("/"):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return [origin.rstrip("/") for origin in value]

    def origins(self) -> list[str]:
        """The origins the console answers; anything else is refused."""
        if self.public_origins:
            return self.public_origins
        local = [f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"]
        if self.host in WILDCARDS:
            # Every address of the machine: which of its names browsers use is not known
            # here, so only the local ones (a published container port) until configured.
            return local
        own = [f"http://{self.host}:{self.port}"]
        if self.host in {"127.0.0.1", "localhost", "::1"}:
            own += local
        return list(dict.fromkeys(own))

    def secure_cookie(self) -> bool:
        """``Secure`` wherever the page is served over HTTPS."""
        return any(urlsplit(origin).scheme == "https" for origin in self.origins())
