"""W1 on the floor plus L-KERN's own request layers, without FastAPI or the ORM.

The floor's plain Starlette and asyncpg, with what every L-KERN request also
pays for: the platform's request context (trace id, metrics, the redacted
log line), admission control, the bearer token checked against identity's
keys (cached as in the services), the role and the rate limit, and the
response built from contacts' own read schema with its ETag. The rate of
this app against the floor's is the price of those layers; L-KERN's against
this one is the price of FastAPI's routing and dependency injection and of
SQLAlchemy's read path, the parts a service could be served without.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.floor.app import GET_SQL
from lkern.contacts.schemas import ContactRead
from lkern.platform.admission import AdmissionMiddleware
from lkern.platform.auth import JwksKeys, Role, TokenVerifier
from lkern.platform.errors import Forbidden
from lkern.platform.logging import configure_logging
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.middleware import RequestContextMiddleware
from lkern.platform.ratelimit import Limit, MemoryCounter, RateLimiter
from lkern.platform.settings import Settings

settings = Settings()
verifier = TokenVerifier(
    JwksKeys(f"{os.environ['IDENTITY_URL']}/.well-known/jwks.json"),
    issuer=settings.jwt_issuer,
    audience=settings.jwt_audience,
)
limiter = RateLimiter(MemoryCounter())
limit = Limit(1_000_000_000, settings.rate_limit_window_seconds)
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    configure_logging()
    # As many connections as the services keep (db_pool_size), opened as used.
    pool = await asyncpg.create_pool(
        os.environ["FLOOR_DATABASE_URL"], min_size=0, max_size=settings.db_pool_size
    )
    yield
    await pool.close()


async def get_contact(request: Request) -> Response:
    assert pool is not None
    principal = await verifier.verify(request.headers.get("authorization", "")[7:])
    if not principal.role.allows(Role.VIEWER):
        raise Forbidden("viewers only")
    await limiter.check(f"user:{principal.subject}", limit)
    row = await pool.fetchrow(GET_SQL, request.path_params["contact_id"])
    if row is None:
        return Response(status_code=404)
    contact = ContactRead.model_validate({**row, "is_deleted": row["deleted_at"] is not None})
    return Response(
        contact.model_dump_json(),
        media_type="application/json",
        headers={"ETag": f'W/"{contact.version}"'},
    )


async def health(_: Request) -> Response:
    return Response('{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/health", health), Route("/api/v1/contacts/{contact_id:uuid}", get_contact)],
    middleware=[
        Middleware(
            RequestContextMiddleware,
            service="contacts",
            metrics=ServiceMetrics("contacts", "bench"),
        ),
        Middleware(
            AdmissionMiddleware,
            limit=settings.request_concurrency(),
            patience_seconds=settings.request_queue_seconds,
        ),
    ],
    lifespan=lifespan,
)
