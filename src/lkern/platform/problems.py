"""RFC 9457 problem documents for every error, and the documented error responses.

Clients get a stable ``code``, a safe ``detail`` and the ``trace_id`` to quote
in a support request; never a stack trace, SQL or a server path.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from lkern.platform.db_errors import database_problem
from lkern.platform.errors import ConcurrentModification, DatabaseUnavailable, DomainError
from lkern.platform.telemetry import current_trace_id

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input.", examples=["body.email"])
    message: str = Field(description="What is wrong with it.", examples=["not a valid email"])


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="Explanation of this occurrence.")
    code: str = Field(description="Stable machine-readable code.", examples=["CONTACT_EMAIL_TAKEN"])
    trace_id: str | None = Field(description="Trace id to quote when reporting the problem.")
    errors: list[FieldError] | None = Field(default=None, description="Field-level failures.")


_STATUS_TEXT: dict[int, tuple[str, str]] = {
    400: ("Bad request", "BAD_REQUEST"),
    401: ("Unauthorized", "UNAUTHORIZED"),
    403: ("Forbidden", "FORBIDDEN"),
    404: ("Not found", "NOT_FOUND"),
    405: ("Method not allowed", "METHOD_NOT_ALLOWED"),
    406: ("Not acceptable", "NOT_ACCEPTABLE"),
    408: ("Request timeout", "REQUEST_TIMEOUT"),
    409: ("Conflict", "CONFLICT"),
    412: ("Precondition failed", "VERSION_MISMATCH"),
    413: ("Content too large", "CONTENT_TOO_LARGE"),
    415: ("Unsupported media type", "UNSUPPORTED_MEDIA_TYPE"),
    422: ("Unprocessable content", "VALIDATION_FAILED"),
    429: ("Too many requests", "RATE_LIMITED"),
    500: ("Internal server error", "INTERNAL_ERROR"),
    503: ("Service unavailable", "SERVICE_UNAVAILABLE"),
}


def problem_type(code: str) -> str:
    return f"urn:lkern:problem:{code.lower().replace('_', '-')}"


def problem_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    default_title, default_code = _STATUS_TEXT.get(status, ("Error", "ERROR"))
    code = code or default_code
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or default_title,
        "status": status,
        "detail": detail,
        "code": code,
        "trace_id": current_trace_id(),
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


_SAFE_MESSAGE = re.compile(r"[^\w\s.,:;'\"()\[\]<>=!?/@+-]")


def _validation_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem_response(400, "The request body is not valid JSON.", code="MALFORMED_JSON")
    field_errors = [
        {
            "field": _field_path(tuple(e.get("loc", ()))),
            "message": _SAFE_MESSAGE.sub("", str(e.get("msg", ""))),
        }
        for e in errors
    ]
    fields = ", ".join(sorted({f["field"] for f in field_errors})) or "request"
    return problem_response(
        422, f"Invalid input: {fields}.", code="VALIDATION_FAILED", extra={"errors": field_errors}
    )


def _domain_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status, exc.detail, code=exc.code, title=exc.title, extra=exc.extra, headers=exc.headers
    )


def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route with this path; several routes
        # (GET and POST on a collection) may share it.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    detail = exc.detail if isinstance(exc.detail, str) else _STATUS_TEXT[500][0]
    return problem_response(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _stale_problem(request: Request, exc: Exception) -> JSONResponse:
    return _domain_problem(request, ConcurrentModification())


def _database_problem(request: Request, exc: Exception) -> JSONResponse:
    problem = database_problem(exc)
    if problem is None:
        # A bug, not an outage: the request middleware logs it and answers 500.
        raise exc
    if isinstance(problem, DatabaseUnavailable):
        logger.warning("database unavailable: %s", type(exc).__name__)
    return _domain_problem(request, problem)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(DomainError, _domain_problem)
    app.add_exception_handler(HTTPException, _http_problem)
    app.add_exception_handler(StaleDataError, _stale_problem)
    app.add_exception_handler(PoolTimeout, _database_problem)
    app.add_exception_handler(DBAPIError, _database_problem)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can answer with."""
    return {
        status: {
            "model": Problem,
            "description": _STATUS_TEXT[status][0],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
