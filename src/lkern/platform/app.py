"""The app factory: one FastAPI application per service, all built the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from lkern.platform import deletion, health, runtime_config
from lkern.platform.db import create_engine, session_factory
from lkern.platform.logging import current_service
from lkern.platform.middleware import RequestContextMiddleware
from lkern.platform.migrations import upgrade
from lkern.platform.problems import install_problem_handlers
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    definition: ServiceDefinition, settings: Settings, *, migrate: bool = True
) -> FastAPI:
    """Build the service's app; with ``migrate`` its schema is brought to head at start."""
    engine = create_engine(settings, definition.name)
    runtime = ServiceRuntime(
        definition=definition, settings=settings, engine=engine, sessions=session_factory(engine)
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        token = current_service.set(definition.name)
        try:
            runtime.data_dir.mkdir(parents=True, exist_ok=True)
            runtime_config.apply_runtime_config(runtime)
            if migrate:
                await asyncio.to_thread(upgrade, definition, settings)
            logger.info("%s ready", definition.name)
            yield
        finally:
            await engine.dispose()
            logger.info("%s stopped", definition.name)
            current_service.reset(token)

    app = FastAPI(
        title=f"L-KERN {definition.title} ({definition.code})",
        description=definition.description,
        version=definition.version,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Retry-After", "traceparent"],
        )
    app.add_middleware(RequestContextMiddleware, service=definition.name)
    app.include_router(health.router)
    app.include_router(runtime_config.router)
    app.include_router(deletion.router)
    for router in definition.routers:
        app.include_router(router)
    return app
