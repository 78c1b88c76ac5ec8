"""Service identity, liveness and readiness routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from lkern.platform.db import PlatformTables
from lkern.platform.runtime import Runtime, ServiceRuntime

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_SECONDS = 2.0

router = APIRouter(tags=["health"])


class ServiceInfo(BaseModel):
    service: str = Field(examples=["contacts"])
    version: str = Field(examples=["0.1.0"])
    docs: str = Field(examples=["/docs"])


class Liveness(BaseModel):
    status: str = Field(examples=["healthy"])
    service: str
    version: str


class Readiness(BaseModel):
    status: str = Field(description="`ready` or `unavailable`.", examples=["ready"])
    service: str
    checks: dict[str, str] = Field(description="Each dependency: `ok` or what failed.")


async def check_database(runtime: ServiceRuntime) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics."}},
)
async def metrics(runtime: Runtime) -> Response:
    await runtime.metrics.refresh_gauges(
        lambda: _refresh_gauges(runtime),
        max_age_seconds=runtime.settings.metrics_refresh_seconds,
    )
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _refresh_gauges(runtime: ServiceRuntime) -> None:
    """The gauges read from the database: a query each, so reused for a few seconds
    rather than run by every scrape (the route is public and never queued)."""
    if PlatformTables.OUTBOX in runtime.definition.platform_tables:
        await _refresh("outbox", runtime.relay.refresh_metrics())
    collect = runtime.definition.collect_metrics
    if collect is not None:
        await _refresh("domain", collect(runtime.unit_of_work, runtime.metrics))


async def _refresh(what: str, refresh: Awaitable[None]) -> None:
    """Gauges are refreshed as they are scraped; a slow database leaves the last values."""
    try:
        await asyncio.wait_for(refresh, READINESS_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("%s metrics not refreshed: %r", what, exc)


@router.get("/", summary="What this service is", response_model=ServiceInfo)
async def root(runtime: Runtime) -> ServiceInfo:
    return ServiceInfo(service=runtime.name, version=runtime.definition.version, docs="/docs")


@router.get("/health", summary="Liveness: the process answers", response_model=Liveness)
async def health(runtime: Runtime) -> Liveness:
    return Liveness(status="healthy", service=runtime.name, version=runtime.definition.version)


@router.get(
    "/health/ready",
    summary="Readiness: database, broker and storage answer",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency does not answer."}},
)
async def ready(runtime: Runtime) -> JSONResponse:
    checks = {"database": lambda: check_database(runtime), **runtime.readiness}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), READINESS_TIMEOUT_SECONDS)
            results[name] = "ok"
        except TimeoutError:
            results[name] = "timeout"
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results[name] = f"failed: {type(exc).__name__}"
    ok = all(result == "ok" for result in results.values())
    body = Readiness(status="ready" if ok else "unavailable", service=runtime.name, checks=results)
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "5"},
    )
