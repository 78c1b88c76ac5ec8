"""Swagger UI at /docs and ReDoc at /redoc, with every asset served by the service itself.

FastAPI's own pages load their scripts, styles and fonts from public CDNs and
stay blank on a machine without internet. The scripts and styles here come
from the installed ``fastapi-offline`` distribution (Swagger UI's bundle,
ReDoc's standalone build), served under ``/docs/assets``; ReDoc is told to use
the browser's fonts instead of Google's, Swagger UI not to ask an online
validator for a badge, and a Content-Security-Policy keeps both pages from
reaching anywhere else (ReDoc's footer would fetch Redocly's logo from its CDN;
refused, it shows the footer without it).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS = Path(str(files("fastapi_offline") / "static"))
# FastAPI's pages start the UIs from inline scripts, both UIs set inline styles,
# and ReDoc runs its search in a worker made from a blob.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    ]
)


def documentation_routes(app: FastAPI) -> list[BaseRoute]:
    """The pages and their assets; public, like the OpenAPI document they render."""

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def confined(page: HTMLResponse) -> HTMLResponse:
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
            init_oauth=app.swagger_ui_init_oauth,
        )
        return confined(page)

    async def oauth2_redirect(_: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return confined(page)

    return [
        Route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False),
        Route(OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET"], include_in_schema=False),
        Route(REDOC_URL, redoc, methods=["GET"], include_in_schema=False),
        Mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets"),
    ]
