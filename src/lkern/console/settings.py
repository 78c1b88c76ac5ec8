"""The console's own settings (``LKERN_CONSOLE_…``); the services it shows are given
by whoever starts it (``lkern run`` knows them, ``lkern console --service`` names them)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LKERN_CONSOLE_", env_file=".env", extra="ignore", validate_default=True
    )

    host: str = Field(default="127.0.0.1", description="Address the console binds.")
    port: int = Field(default=8099, ge=1, le=65535)
    public_origin: str | None = Field(
        default=None,
        description="The origin browsers use (e.g. https://console.example.com) when the "
        "console sits behind a proxy; by default http://HOST:PORT (and localhost for 127.0.0.1).",
    )
    session_idle_seconds: int = Field(
        default=8 * 3600, ge=60, description="A session unused this long is signed out."
    )
    max_sessions: int = Field(default=1000, ge=1, description="Oldest sessions go beyond this.")
    upstream_timeout_seconds: float = Field(
        default=3.0, gt=0, description="How long a service may take before it is shown as down."
    )
    poll_seconds: float = Field(default=3.0, ge=1, description="How often the page refreshes.")

    def origins(self) -> list[str]:
        """The origins the console answers; anything else is refused."""
        if self.public_origin:
            return [self.public_origin.rstrip("/")]
        own = [f"http://{self.host}:{self.port}"]
        if self.host in {"127.0.0.1", "localhost", "::1"}:
            own += [f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"]
        return list(dict.fromkeys(own))

    def secure_cookie(self) -> bool:
        """``Secure`` wherever the page is served over HTTPS."""
        return any(urlsplit(origin).scheme == "https" for origin in self.origins())
