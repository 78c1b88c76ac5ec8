"""The app factory: one FastAPI application per service, all built the same way.

Which adapters the app runs on is decided by the composition root
(:mod:`lkern.platform.bootstrap`); this module only builds the HTTP side.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lkern.platform import deletion_views, health, runtime_config
from lkern.platform.bootstrap import build_runtime, start_runtime, stop_runtime
from lkern.platform.cleanup import views as cleanup_views
from lkern.platform.docs import documentation_routes
from lkern.platform.edge import install_edge
from lkern.platform.events import dlq
from lkern.platform.logging import current_service
from lkern.platform.openapi import LICENSE, SERVERS, install_openapi
from lkern.platform.problems import install_problem_handlers
from lkern.platform.routers import add_routes, is_protected, is_public
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings
from lkern.platform.storage import routes as storage_routes

logger = logging.getLogger(__name__)


def create_app(
    definition: ServiceDefinition, settings: Settings, *, migrate: bool = True
) -> FastAPI:
    """The service's app on the adapters its settings call for (bootstrap.py); with
    ``migrate`` its schema is brought to head at start."""
    return build_app(build_runtime(definition, settings), migrate=migrate)


def build_app(runtime: ServiceRuntime, *, migrate: bool = True) -> FastAPI:
    """The FastAPI app serving ``runtime``, which it starts and stops with its lifespan."""
    definition, settings = runtime.definition, runtime.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        token = current_service.set(definition.name)
        try:
            await start_runtime(runtime, migrate=migrate)
            logger.info("%s ready", definition.name)
            yield
        finally:
            await stop_runtime(runtime)
            logger.info("%s stopped", definition.name)
            current_service.reset(token)

    app = FastAPI(
        title=f"L-KERN {definition.title} ({definition.code})",
        description=definition.description,
        version=definition.version,
        servers=SERVERS,
        license_info=LICENSE,
        docs_url=None,  # docs.py serves the pages, assets and all
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,
        # The platform measures and traces requests itself (metrics.py, middleware.py);
        # FastAPI's own OpenTelemetry hooks would cost a provider lookup per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    install_openapi(app)
    # FastAPI added /openapi.json first; a request is matched against the routes
    # in order, so it and the documentation pages go last and the service's own
    # routes, the ones most requests are for, first.
    documentation = [*app.router.routes, *documentation_routes(app)]
    app.router.routes.clear()
    protected = [*definition.routers, runtime_config.router, deletion_views.router]
    if definition.event_handlers:
        protected.append(dlq.router)
    public = list(definition.public_routers)
    if definition.file_slots:
        protected.append(cleanup_views.router)
        public.append(storage_routes.local_files_router)
    lane = settings.express_lane
    add_routes(app, protected, guard=is_protected, express_lane=lane)
    add_routes(app, public, guard=is_public, express_lane=lane)
    add_routes(app, [health.router], guard=None, express_lane=lane)
    app.router.routes.extend(documentation)
    install_edge(
        app,
        settings,
        service=definition.name,
        metrics=runtime.metrics,
        shutdown=runtime.shutdown,
        tracer=runtime.tracer,
    )
    return app
