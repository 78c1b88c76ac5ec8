"""The console's HTTP server: the page, the session, and the calls it passes on.

Defences, each for one way in: the ``Host`` must be the console's own (no DNS
rebinding); a request another origin sends is refused (no CORS, ever); every
state-changing call carries the session's CSRF token in a header, which a
cross-site form cannot set; the session cookie is ``HttpOnly`` and
``SameSite=Strict``; the Content-Security-Policy lets the page run only its
own script file.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lkern.console.sessions import Session, SessionStore
from lkern.console.settings import ConsoleSettings
from lkern.console.upstream import Answer, SessionEnded, SignInRefused, Unreachable, Upstream

logger = logging.getLogger(__name__)

COOKIE = "lkern_console"
CSRF_HEADER = "X-CSRF-Token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SAFE_METHODS = {"GET", "HEAD"}
#: The page's files: name → media type. Nothing else is served from the package.
STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


class SignIn(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class LogLevel(BaseModel):
    level: str = Field(min_length=1, max_length=20)


@dataclass
class Console:
    """What the console's routes share: one per app."""

    settings: ConsoleSettings
    origins: list[str]
    hosts: set[str]
    store: SessionStore
    upstream: Upstream


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


Shared = Annotated[Console, Depends(_console)]


def _session(request: Request, console: Shared) -> Session:
    found = console.store.get(request.cookies.get(COOKIE))
    if found is None:
        raise _Problem(401, "Not signed in", "Sign in first.")
    return found


def _csrf_checked(request: Request, current: Annotated[Session, Depends(_session)]) -> Session:
    if not current.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise _Problem(403, "Forbidden", f"The {CSRF_HEADER} header is missing or wrong.")
    return current


def _known(name: Annotated[str, Path(max_length=64)], console: Shared) -> str:
    if name not in console.upstream.services:
        raise _Problem(404, "Not found", f"No service {name!r} in this console.")
    return name


Signed = Annotated[Session, Depends(_session)]
Changing = Annotated[Session, Depends(_csrf_checked)]
ServiceName = Annotated[str, Depends(_known)]

router = APIRouter()


@router.get("/")
async def index(request: Request) -> Response:
    page: bytes = request.app.state.page
    return Response(page, media_type="text/html; charset=utf-8", headers=_revalidate())


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    files: dict[str, bytes] = request.app.state.files
    if name not in files:
        return problem(404, "Not found", f"No file {name!r}.")
    return Response(files[name], media_type=STATIC[name], headers=_revalidate())


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy", "service": "console"}


@router.get("/session")
async def current_session(request: Request, console: Shared) -> dict[str, Any]:
    found = console.store.get(request.cookies.get(COOKIE))
    if found is None:
        return {"signed_in": False, "poll_seconds": console.settings.poll_seconds}
    return _session_body(found, console.settings)


@router.post("/session")
async def sign_in(body: SignIn, console: Shared) -> Response:
    try:
        signed = await console.upstream.sign_in(body.email.strip(), body.password)
    except SignInRefused as exc:
        title = "Not an administrator" if exc.status == 403 else "Sign-in refused"
        return problem(exc.status, title, str(exc))
    session_id = console.store.add(signed)
    logger.info("console: %s signed in", signed.email)
    response = JSONResponse(_session_body(signed, console.settings))
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=console.settings.secure_cookie(),
        path="/",
    )
    return response


@router.delete("/session", status_code=204)
async def sign_out(request: Request, current: Changing, console: Shared) -> Response:
    console.store.remove(request.cookies.get(COOKIE))
    await console.upstream.sign_out(current)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/api/overview")
async def overview(current: Signed, console: Shared) -> dict[str, Any]:
    return await console.upstream.overview(current)


@router.put("/api/services/{name}/log-level")
async def put_log_level(
    name: ServiceName, body: LogLevel, current: Changing, console: Shared
) -> Response:
    answer = await console.upstream.call(
        current, "PUT", name, "/config/log-level", json=body.model_dump()
    )
    return _passed_on(answer)


@router.post("/api/services/{name}/dead-letters/{letter_id}/replay")
async def replay(
    name: ServiceName, letter_id: uuid.UUID, current: Changing, console: Shared
) -> Response:
    path = f"/api/v1/dlq/{letter_id}/replay"
    return _passed_on(await console.upstream.call(current, "POST", name, path))


@router.post("/api/services/{name}/deletions/{audit_id}/retry")
async def retry(
    name: ServiceName, audit_id: uuid.UUID, current: Changing, console: Shared
) -> Response:
    path = f"/api/v1/cleanup/retry/{audit_id}"
    return _passed_on(await console.upstream.call(current, "POST", name, path))


def create_console_app(
    settings: ConsoleSettings, services: Mapping[str, str], identity_url: str
) -> FastAPI:
    """The console for ``services`` (name → REST base URL), signing in at ``identity_url``."""
    origins = settings.origins()
    console = Console(
        settings=settings,
        origins=origins,
        hosts={urlsplit(origin).netloc for origin in origins},
        store=SessionStore(
            idle_seconds=settings.session_idle_seconds, max_sessions=settings.max_sessions
        ),
        upstream=Upstream(
            services, identity_url, timeout_seconds=settings.upstream_timeout_seconds
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await console.upstream.close()

    app = FastAPI(
        title="L-KERN console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    package = resources.files("lkern.console") / "static"
    app.state.console = console
    app.state.page = (package / "index.html").read_bytes()
    app.state.files = {name: (package / name).read_bytes() for name in STATIC}
    app.include_router(router)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Liveness probes (Kubernetes, compose) come with the pod's address as Host.
        why = None if request.url.path == "/health" else _refused(console, request)
        response = problem(403, "Forbidden", why) if why else await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path.startswith(("/api/", "/session")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(SessionEnded)
    async def session_ended(request: Request, exc: SessionEnded) -> Response:
        console.store.remove(request.cookies.get(COOKIE))
        response = problem(401, "Signed out", f"Your session has ended ({exc}); sign in again.")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.exception_handler(Unreachable)
    async def unreachable(_: Request, exc: Unreachable) -> Response:
        return problem(503, "Service unavailable", f"{str(exc).capitalize()}.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:]) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        return problem(422, "Invalid request", where or "The request is not valid.")

    @app.exception_handler(_Problem)
    async def on_problem(_: Request, exc: _Problem) -> Response:
        return problem(exc.status, exc.title, exc.detail)

    return app


def _refused(console: Console, request: Request) -> str | None:
    """Why a request is not the console's own page talking to it, or None."""
    if request.headers.get("host") not in console.hosts:
        return f"This console answers only at {' or '.join(console.origins)}."
    origin = request.headers.get("origin")
    if origin is not None and origin not in console.origins:
        return "Requests from other origins are refused."
    site = request.headers.get("sec-fetch-site")
    # A link from elsewhere may open the page; nothing else may come from another site.
    navigating = request.method in SAFE_METHODS and request.url.path == "/"
    if site not in (None, "same-origin", "none") and not navigating:
        return "Requests from other sites are refused."
    if request.method not in SAFE_METHODS and origin is None:
        return "A state-changing request must come from the console's page (Origin)."
    return None


class _Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def _revalidate() -> dict[str, str]:
    # Asked again each time, so an upgraded console never runs yesterday's script.
    return {"Cache-Control": "no-cache"}


def _session_body(session: Session, settings: ConsoleSettings) -> dict[str, Any]:
    return {
        "signed_in": True,
        "email": session.email,
        "csrf_token": session.csrf_token,
        "poll_seconds": settings.poll_seconds,
    }


def _passed_on(answer: Answer) -> Response:
    """The service's answer as it gave it (a problem document stays one)."""
    if answer.body is None:
        return Response(status_code=answer.status)
    media = "application/problem+json" if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, media_type=media)
