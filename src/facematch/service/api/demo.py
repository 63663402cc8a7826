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

The bundle key is derived from the bundle's HMAC secret (kept encrypted by the
vault), so every worker recovers the same key without storing it in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from facematch.service.api.deps import ServicesDep, bearer_token
from facematch.service.api.json_body import unstorable_text
from facematch.service.errors import (
    InternalError,
    InvalidField,
    InvalidJson,
    Overloaded,
    TokenMissing,
    TransactionNotFound,
)
from facematch.settings import Settings
from facematch.store import repository, security
from facematch.store.models import (
    Application,
    Bundle,
    User,
)
from facematch.store.sealed import ensure_bundle_hmac_secret
from facematch.store.vault import Vault

DEMO_ORGANISATION = "facematch-demo"
DEMO_USERNAME = "facematch-demo"
DEMO_TOKEN_TRIALS = 3
ASSETS = Path(__file__).parent / "demo_assets"
NO_STORE = {"Cache-Control": "no-store"}
# The page may talk to this server only; photos are shown from blob: URLs.
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
}
MAX_TRANSACTION_ID = 64
DEMO_MAX_LIVE_TOKENS = 100
"""Unexpired demo tokens at most: each page load adds a token row, so anyone reaching
the port could otherwise grow the table without bound. Above it: 429, retry later."""
DEMO_RETRY_AFTER_S = 60


def demo_enabled(settings: Settings) -> bool:
    """The ``demo`` setting, defaulting to on in development and off in production."""
    return settings.demo if settings.demo is not None else settings.environment == "development"


def _bundle_key(hmac_secret: str) -> str:
    digest = hmac.new(hmac_secret.encode(), b"facematch demo bundle key", hashlib.sha256)
    return "demo_" + digest.hexdigest()[:40]


@dataclass(frozen=True)
class DemoParts:
    user: User
    application: Application
    bundle: Bundle


def _existing(session: Session) -> DemoParts | None:
    org = repository.find_organisation(session, name=DEMO_ORGANISATION)
    if org is None:
        return None
    user = repository.find_user(session, username=DEMO_USERNAME)
    app = repository.first_application(session, organisation_id=org.id)
    if user is None or app is None:
        return None
    bundle = repository.get_bundle(session, bundle_id=app.bundle_id)
    return DemoParts(user, app, bundle) if bundle is not None else None


def _create(session: Session, vault: Vault) -> None:
    org = repository.create_organisation(session, name=DEMO_ORGANISATION)
    # Nobody logs in as this user: tokens are issued to the page directly.
    repository.create_user(
        session, organisation=org, username=DEMO_USERNAME, password=secrets.token_urlsafe(32)
    )
    bundle, _ = repository.create_bundle(
        session,
        organisation=org,
        token_trials=DEMO_TOKEN_TRIALS,
        store_images=False,
        vault=vault,
    )
    repository.create_application(session, organisation=org, bundle=bundle, name="demo page")
    key = _bundle_key(ensure_bundle_hmac_secret(session, vault, bundle))
    bundle.key_hash = security.digest_secret(key)
    bundle.key_prefix = security.key_prefix(key)
    session.commit()


def _session(session: Session, vault: Vault, refresh_lifetime_s: int) -> dict[str, Any]:
    parts = _existing(session)
    if parts is None:
        try:
            _create(session, vault)
        except IntegrityError:  # another worker created it first
            session.rollback()
        parts = _existing(session)
        if parts is None:
            raise InternalError("the demo bundle could not be created")
    live = repository.count_live_tokens(session, bundle_id=parts.bundle.id)
    if live >= DEMO_MAX_LIVE_TOKENS:
        raise Overloaded(retry_after_s=DEMO_RETRY_AFTER_S)
    key = _bundle_key(ensure_bundle_hmac_secret(session, vault, parts.bundle))
    issued = repository.issue_token(
        session,
        user=parts.user,
        application=parts.application,
        refresh_lifetime_s=refresh_lifetime_s,
    )
    session.commit()
    return {
        "access_token": issued.access_token,
        "expires_in": issued.expires_in_s,
        "trials": parts.bundle.token_trials,
        "bundle_key": key,
    }


def _boxes(session: Session, token: str, transaction_id: str) -> dict[str, Any]:
    found = repository.find_token(session, access_token=token)
    transaction = repository.get_transaction(session, transaction_id=transaction_id)
    if found is None or transaction is None or transaction.token_id != found.id:
        raise TransactionNotFound()
    return {"first": transaction.first_box, "second": transaction.second_box}


router = APIRouter(prefix="/demo", include_in_schema=False)


@router.get("")
@router.get("/")
async def page() -> FileResponse:
    return FileResponse(ASSETS / "index.html", headers=PAGE_HEADERS)


@router.post("/session")
async def demo_session(services: ServicesDep) -> JSONResponse:
    def work() -> dict[str, Any]:
        with services.sessions() as session:
            return _session(session, services.vault, services.settings.refresh_token_lifetime_s)

    return JSONResponse(await run_in_threadpool(work), headers=NO_STORE)


@router.post("/boxes")
async def demo_boxes(request: Request, services: ServicesDep) -> JSONResponse:
    token = bearer_token(request)
    if token is None:
        raise TokenMissing()
    try:
        body = await request.json()
    except (ValueError, RecursionError) as exc:  # deep nesting is a RecursionError
        raise InvalidJson() from exc
    transaction_id = body.get("transaction_id") if isinstance(body, dict) else None
    if (
        not isinstance(transaction_id, str)
        or not 0 < len(transaction_id) <= MAX_TRANSACTION_ID
        or unstorable_text(transaction_id)  # no id holds one; the database must not see it
    ):
        raise InvalidField("transaction_id")

    def work() -> dict[str, Any]:
        with services.sessions() as session:
            return _boxes(session, token, transaction_id)

    return JSONResponse(await run_in_threadpool(work), headers=NO_STORE)


def install_demo(app: FastAPI, settings: Settings) -> None:
    """Mount the demo page and its two routes when the ``demo`` setting allows."""
    if not demo_enabled(settings):
        return
    app.include_router(router)
    app.mount("/demo/static", StaticFiles(directory=ASSETS), name="demo-assets")
