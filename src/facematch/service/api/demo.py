"""The demo page: two photos in, "same person or not" out, in a browser.

On when ``environment`` is development, off by default in production (setting
``demo``). The page talks to the real API; what it needs beyond it:

- ``POST /demo/session`` gives the page an access token of a dedicated demo
  organisation (created on first use, images not stored) and that bundle's key.
  No secret of a real client is ever in the page: the demo organisation can do
  nothing but face matches on its own bundle, and reading transactions back
  needs an RSA key it never has.
- ``POST /demo/boxes`` returns the face boxes of a transaction made with the
  presented demo token, so the page can draw them (the Valify answer has no boxes
  and keeps its shape).

These routes only parse, call :class:`~facematch.service.application.demo.DemoService`
and map its answer; refusals are errors of the tree, answered by the one handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from facematch.service.api.deps import OFF_LOOP_PARSE_BYTES, DemoDep, bearer_token
from facematch.service.api.json_body import parse_json
from facematch.service.errors import InvalidField, TokenMissing
from facematch.settings import Settings

ASSETS = Path(__file__).parent / "demo_assets"
NO_STORE = {"Cache-Control": "no-store"}
# The page may talk to this server only; photos are shown from blob: URLs.
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
}
MAX_TRANSACTION_ID = 64


def demo_enabled(settings: Settings) -> bool:
    """The ``demo`` setting, defaulting to on in development and off in production."""
    return settings.demo if settings.demo is not None else settings.environment == "development"


def _transaction_id(body: Any) -> str:
    # Any body but an object holding a short string id is an invalid transaction_id
    # (not invalid_json): the page's tests document that answer. Hostile JSON (deep
    # nesting, NUL, lone surrogates…) was already refused by the shared parser.
    transaction_id = body.get("transaction_id") if isinstance(body, dict) else None
    if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= MAX_TRANSACTION_ID:
        raise InvalidField("transaction_id")
    return transaction_id


router = APIRouter(prefix="/demo", include_in_schema=False)


@router.get("")
@router.get("/")
async def page() -> FileResponse:
    return FileResponse(ASSETS / "index.html", headers=PAGE_HEADERS)


@router.post("/session")
async def demo_session(demo: DemoDep) -> JSONResponse:
    opened = await run_in_threadpool(demo.open_session)
    return JSONResponse(
        {
            "access_token": opened.access_token,
            "expires_in": opened.expires_in_s,
            "trials": opened.trials,
            "bundle_key": opened.bundle_key,
        },
        headers=NO_STORE,
    )


@router.post("/boxes")
async def demo_boxes(request: Request, demo: DemoDep) -> JSONResponse:
    token = bearer_token(request)
    if token is None:
        raise TokenMissing()
    # No media type is required here (the page's fetch sends JSON; tests send none).
    raw = await request.body()
    if len(raw) > OFF_LOOP_PARSE_BYTES:  # as the service's bodies: big ones off the loop
        body = await run_in_threadpool(parse_json, raw)
    else:
        body = parse_json(raw)
    boxes = await run_in_threadpool(
        demo.face_boxes, access_token=token, transaction_id=_transaction_id(body)
    )
    return JSONResponse(boxes, headers=NO_STORE)


def install_demo(app: FastAPI, settings: Settings) -> None:
    """Mount the demo page and its two routes when the ``demo`` setting allows."""
    if not demo_enabled(settings):
        return
    app.include_router(router)
    app.mount("/demo/static", StaticFiles(directory=ASSETS), name="demo-assets")
