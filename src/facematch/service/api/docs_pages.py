"""``/docs`` (Swagger UI) and ``/redoc`` served with assets from an installed package.

FastAPI's own pages load their scripts, styles, fonts and favicon from public
CDNs: blank in an air-gapped network, and a third-party request from every
visitor's browser elsewhere. ``fastapi-offline`` ships the same Swagger UI and
ReDoc bundles; they are mounted under :data:`STATIC_URL` and the pages point at
them, so no page of facematch makes a request to any host but the server.

Whether the pages exist at all stays the app's decision (``docs_url`` /
``redoc_url``); this only replaces the pages that are there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

STATIC_URL = "/static/api-docs"
ASSETS = Path(fastapi_offline.__file__).parent / "static"

# Defence in depth: even a script bundled in the assets cannot reach another host (the
# ReDoc bundle would fetch its vendor's logo from a CDN). Inline scripts and styles are
# those of FastAPI's page templates; blob: workers are ReDoc's search.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
)
SELF_ONLY = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

SWAGGER_UI_PARAMETERS = {
    # Swagger UI would otherwise send the document to validator.swagger.io.
    "validatorUrl": None,
    "persistAuthorization": False,
}


# The one remote URL in the ReDoc bundle: its vendor's logo, drawn in the menu
# unconditionally. Served with that URL pointing at the local favicon instead.
REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_BUNDLE = "redoc.standalone.js"


@cache
def _redoc_bundle(local_logo: str) -> bytes:
    return (ASSETS / REDOC_BUNDLE).read_bytes().replace(REDOC_REMOTE_LOGO, local_logo.encode())


def _drop_route(app: FastAPI, path: str) -> None:
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not (isinstance(route, Route) and route.path == path)
    ]


def install_offline_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed /docs and /redoc with self-hosted ones."""
    if app.docs_url is None and app.redoc_url is None:
        return

    async def redoc_bundle(_request: Request) -> Response:
        body = _redoc_bundle(f"{STATIC_URL}/favicon.png")
        return Response(body, media_type="text/javascript")

    # Before the mount, so this route answers for the bundle.
    app.add_route(f"{STATIC_URL}/{REDOC_BUNDLE}", redoc_bundle, include_in_schema=False)
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{STATIC_URL}/{name}"

    if app.docs_url is not None:
        docs_url = app.docs_url
        _drop_route(app, docs_url)

        async def swagger_ui(request: Request) -> HTMLResponse:
            page = get_swagger_ui_html(
                openapi_url=f"{request.scope.get('root_path', '')}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
            page.headers.update(SELF_ONLY)
            return page

        app.add_route(docs_url, swagger_ui, include_in_schema=False)

    if app.redoc_url is not None:
        redoc_url = app.redoc_url
        _drop_route(app, redoc_url)

        async def redoc(request: Request) -> HTMLResponse:
            page = get_redoc_html(
                openapi_url=f"{request.scope.get('root_path', '')}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=asset(request, REDOC_BUNDLE),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,
            )
            page.headers.update(SELF_ONLY)
            return page

        app.add_route(redoc_url, redoc, include_in_schema=False)
