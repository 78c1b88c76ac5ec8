"""Settings from the environment, with per-service overrides.

Every field can be set for all services as ``LKERN_<FIELD>`` and for one
service as ``LKERN_<SERVICE>_<FIELD>``; the per-service value wins. This lets
``lkern run`` host several services in one process while each keeps its own
database, and lets production give each service its own secrets.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar, overload

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lkern.platform.addresses import parse_networks

MIB = 1024 * 1024

#: The service secret of development and tests; production refuses to start without a real one.
DEVELOPMENT_SECRET = "lkern-development-service-secret"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """The platform's configuration of one service instance.

    A service with settings of its own subclasses this (``<service>/settings.py``)
    and names the subclass in its definition.
    """

    model_config = SettingsConfigDict(
        env_prefix="LKERN_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path(".lkern"), description="Root of per-service data.")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="REST port; the service default if unset.")
    grpc_port: int | None = Field(
        default=None, description="gRPC port; the service default if unset."
    )
    identity_url: str = Field(
        default="http://127.0.0.1:8100", description="Base URL of identity (for its JWKS)."
    )
    jwt_issuer: str = "lkern-identity"
    jwt_audience: str = "lkern"
    service_secret: SecretStr | None = Field(
        default=None, description="Shared by the services to prove who calls over gRPC."
    )
    redis_url: str | None = Field(
        default=None, description="Share rate limits across replicas (redis://host:port/db)."
    )
    rate_limit_requests: int = Field(
        default=600, ge=1, description="Per user (or client) and window."
    )
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    anonymous_rate_limit_requests: int = Field(default=120, ge=1, description="Per client address.")
    redis_timeout_seconds: float = Field(
        default=0.05, gt=0, description="Connecting to Redis, and each reply from it."
    )
    redis_retry_seconds: float = Field(
        default=5.0, gt=0, description="After Redis failed, how long it is skipped."
    )
    clock_skew_seconds: int = Field(
        default=30,
        ge=0,
        description="How far other clocks may be off: token iat/exp/nbf, gRPC credentials.",
    )
    grpc_deadline_seconds: float = Field(
        default=1.5, gt=0, description="Deadline of one gRPC call to a peer, retries included."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; SQLite under data_dir if unset."
    )
    max_concurrent_requests: int | None = Field(
        default=None,
        ge=1,
        description="Requests handled at once per process, later ones queue (admission.py); "
        "by default as many as the database pool keeps open (db_pool_size).",
    )
    request_queue_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait in that queue before a 503."
    )
    express_lane: bool = Field(
        default=True,
        description="Serve the GETs marked express=True on the express lane (express.py); "
        "false sends every request through FastAPI's own handling.",
    )
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a pooled connection."
    )
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    log_level: str = "info"
    log_format: LogFormat = LogFormat.TEXT
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "is believed, comma-separated; none by default, so the socket peer is the client.",
    )
    max_body_bytes: int = Field(
        default=MIB, ge=1, description="Largest request body; larger ones are a 413 unread."
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a request body may take to arrive, plus a second for every "
        "body_min_rate bytes received; a slower body is a 408.",
    )
    body_min_rate: int = Field(
        default=4096, ge=1, description="Bytes per second a slow body must keep up (see above)."
    )
    metrics_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long the gauges /metrics reads from the database (outbox backlog, "
        "domain counts) are reused; concurrent scrapes share one refresh.",
    )
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    broker_url: str = Field(
        default="memory://", description="memory:// (one process) or kafka://host:port[,host:port]."
    )
    kafka_idempotence: bool = Field(
        default=True,
        description="Use the idempotent producer where the broker has it (asked at the first "
        "publish; a broker without InitProducerId gets a plain producer and one warning); "
        "false never asks.",
    )
    kafka_request_timeout_ms: int = Field(default=5_000, ge=100)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=100)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=10)
    kafka_rebalance_timeout_ms: int = Field(default=10_000, ge=100)
    kafka_partitions: int = Field(default=4, ge=1, description="Partitions of topics we create.")
    kafka_fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        description="Longest wait of a consumer's fetch for new events; on tansu, which "
        "answers an empty fetch only when it runs out, it adds up to this much to each "
        "event's latency.",
    )
    kafka_fetch_idle_wait_ms: int = Field(
        default=200,
        ge=1,
        description="The same wait once a consumer's fetches found nothing for a second: "
        "an idle consumer then asks the broker 5 times a second instead of 50; the first "
        "fetch that brings events returns it to the short wait.",
    )
    kafka_fetch_max_records: int = Field(
        default=500, ge=1, description="Most events a consumer handles in one transaction."
    )
    outbox_batch_size: int = Field(default=200, ge=1)
    outbox_in_flight_batches: int = Field(
        default=1,
        ge=1,
        description="Claimed batches the relay has out at once; above 1 the next is claimed "
        "and sent while the broker acknowledges the last (more claims of fewer rows each: "
        "on two cores that cost more latency than it saved, docs/benchmarks.md).",
    )
    revocation_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each replica reloads revoked users from its database (§9).",
    )
    outbox_poll_seconds: float = Field(default=1.0, gt=0, description="Relay polling fallback.")
    outbox_lease_seconds: float = Field(default=30.0, gt=0)
    outbox_retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    consumer_retries: int = Field(default=3, ge=0)
    consumer_retry_base_seconds: float = Field(default=0.5, ge=0)
    storage_url: str | None = Field(
        default=None,
        description="file:///path or s3://BUCKET?endpoint=…&region=…; under data_dir if unset.",
    )
    upload_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, description="Largest upload.")
    upload_allowed_types: list[str] = Field(
        default_factory=lambda: ["image/jpeg", "image/png", "application/pdf", "text/plain"],
        description="Media types an upload may be, judged from its bytes.",
    )
    download_url_ttl_seconds: int = Field(
        default=900, ge=1, le=7 * 24 * 3600, description="How long a download link works."
    )
    cleanup_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often the cleanup worker looks for due deletions."
    )
    cleanup_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry of an interrupted deletion; doubles after."
    )
    cleanup_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long one replica holds a deletion it works on."
    )
    storage_signing_key: SecretStr | None = Field(
        default=None,
        description="Signs local-file download links; derived from the service secret if unset.",
    )

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """``settings`` as this class: a service's hooks are handed its own settings."""
        if not isinstance(settings, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(settings).__name__}")
        return settings

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        parse_networks(value)  # raises ValueError naming the entry that is not an address
        return value

    def production_problems(self, service: str) -> list[str]:
        """What makes this configuration unfit for production (empty when fit)."""
        if self.env is not Environment.PRODUCTION:
            return []
        prefix = f"LKERN_{service.upper()}_"
        problems = []
        if not self.database_url:
            problems.append(f"{prefix}DATABASE_URL (or LKERN_DATABASE_URL) is not set")
        if self.broker_url.startswith("memory://"):
            problems.append("LKERN_BROKER_URL is memory://: events would never leave the process")
        if "*" in self.cors_origins:
            problems.append("LKERN_CORS_ORIGINS contains '*'; name the origins")
        if self.service_secret is None:
            problems.append("LKERN_SERVICE_SECRET is not set: gRPC callers could not be trusted")
        return problems

    def request_concurrency(self) -> int:
        """Requests let in at once: one per pooled connection unless set.

        No request then waits for a connection, and the pool's overflow is left
        to the relay and consumers instead of being opened and closed by bursts.
        """
        return self.max_concurrent_requests or self.db_pool_size

    def service_secret_value(self) -> str:
        return self.service_secret.get_secret_value() if self.service_secret else DEVELOPMENT_SECRET

    def resolved_storage_url(self, service: str) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.service_data_dir(service).resolve() / "files").as_uri()

    def service_data_dir(self, service: str) -> Path:
        return self.data_dir / service

    def resolved_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        path = self.service_data_dir(service).resolve() / f"{service}.db"
        return f"sqlite+aiosqlite:///{path}"


S = TypeVar("S", bound=Settings)


@overload
def load_settings(service: str | None = None, **overrides: Any) -> Settings: ...


@overload
def load_settings(service: str | None, settings_class: type[S], **overrides: Any) -> S: ...


def load_settings(
    service: str | None = None, settings_class: type[Settings] = Settings, **overrides: Any
) -> Settings:
    """Read the global settings, then lay the service's own overrides over them.

    ``settings_class`` is the service's own (a subclass adding its fields);
    its fields follow the same two rules.
    """
    base = settings_class(**overrides)
    if service is None:
        return base
    prefix = f"LKERN_{service.upper()}_"
    specific = settings_class(_env_prefix=prefix)
    merged = base.model_dump()
    merged.update({name: getattr(specific, name) for name in specific.model_fields_set})
    merged.update(overrides)
    return settings_class.model_validate(merged)
