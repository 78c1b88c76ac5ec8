"""Domain errors and their mapping to RFC 9457 problem documents.

Service code raises these; the HTTP layer (``problems.py``) turns them into
``application/problem+json`` answers. Each error carries a stable UPPER_SNAKE
``code`` that clients can rely on, and a human ``detail`` that is safe to show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a client may see; never carries internals."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    default_code: ClassVar[str] = "BAD_REQUEST"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra: dict[str, Any] = dict(extra or {})
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(DomainError):
    pass


class NotFound(DomainError):
    status = 404
    title = "Not found"
    default_code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    default_code = "CONFLICT"


class InvalidTransition(Conflict):
    default_code = "INVALID_TRANSITION"

    def __init__(self, current: str, target: str, allowed: Sequence[str]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(
            f"Cannot go from '{current}' to '{target}'; allowed: {allowed_text}.",
            extra={"current": current, "target": target, "allowed": list(allowed)},
        )


class ConcurrentModification(Conflict):
    default_code = "CONCURRENT_MODIFICATION"

    def __init__(
        self, detail: str = "The resource was changed by someone else; reload and retry."
    ) -> None:
        super().__init__(detail)


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"
    default_code = "VERSION_MISMATCH"


class Unprocessable(DomainError):
    status = 422
    title = "Unprocessable content"
    default_code = "VALIDATION_FAILED"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        errors = [{"field": field, "message": detail}] if field else []
        super().__init__(detail, code=code, extra={"errors": errors, **(extra or {})})


class ValueNotStorable(Unprocessable):
    """The database refused a value that got past validation (a number out of its range)."""

    def __init__(self) -> None:
        super().__init__("A value in the request is outside what can be stored.")


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"
    default_code = "UNAUTHORIZED"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    default_code = "FORBIDDEN"


class ServiceUnavailable(DomainError):
    status = 503
    title = "Service unavailable"
    default_code = "SERVICE_UNAVAILABLE"

    def __init__(self, detail: str, *, code: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(ServiceUnavailable):
    default_code = "DATABASE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("The database is unavailable; try again shortly.")


class ConfigurationError(RuntimeError):
    """The service must not start with this configuration."""
