"""The demo page's use cases: :class:`DemoService` (docs/demo.md).

A dedicated demo organisation (created on first use, images not stored) whose
one bundle the page uses: a session is an access token of its demo user and
that bundle's key; the boxes are those of a transaction made with the token
presented. The bundle key is derived from the bundle's HMAC secret (kept
encrypted by the vault), so every worker recovers the same key without
storing it in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facematch.service.errors import InternalError, Overloaded, TransactionNotFound
from facematch.store import repository, security
from facematch.store.models import Application, Bundle, User
from facematch.store.sealed import ensure_bundle_hmac_secret
from facematch.store.vault import Vault

DEMO_ORGANISATION = "facematch-demo"
DEMO_USERNAME = "facematch-demo"
DEMO_TOKEN_TRIALS = 3
DEMO_MAX_LIVE_TOKENS = 100
"""Unexpired demo tokens at most: each page load adds a token row, so anyone reaching
the port could otherwise grow the table without bound. Above it: 429, retry later."""
DEMO_RETRY_AFTER_S = 60


@dataclass(frozen=True)
class DemoSession:
    """What the page needs to call the real API."""

    access_token: str
    expires_in_s: int
    trials: int
    bundle_key: str


@dataclass(frozen=True)
class _DemoParts:
    user: User
    application: Application
    bundle: Bundle


def _bundle_key(hmac_secret: str) -> str:
    digest = hmac.new(hmac_secret.encode(), b"facematch demo bundle key", hashlib.sha256)
    return "demo_" + digest.hexdigest()[:40]


def _existing(session: Session) -> _DemoParts | None:
    org = repository.find_organisation(session, name=DEMO_ORGANISATION)
    if org is None:
        return None
    user = repository.find_user(session, username=DEMO_USERNAME)
    app = repository.first_application(session, organisation_id=org.id)
    if user is None or app is None:
        return None
    bundle = repository.get_bundle(session, bundle_id=app.bundle_id)
    return _DemoParts(user, app, bundle) if bundle is not None else None


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


class DemoService:
    """The demo's two use cases, built once at start-up (whether or not the demo is on:
    building it touches nothing)."""

    def __init__(
        self,
        *,
        sessions: Callable[[], Session],
        vault: Vault,
        refresh_lifetime_s: int,
        max_live_tokens: int = DEMO_MAX_LIVE_TOKENS,
    ) -> None:
        self.sessions = sessions
        self.vault = vault
        self.refresh_lifetime_s = refresh_lifetime_s
        self.max_live_tokens = max_live_tokens

    def open_session(self) -> DemoSession:
        """A new token of the demo bundle, creating the demo organisation on first use;
        :class:`Overloaded` when :attr:`max_live_tokens` unexpired ones exist."""
        with self.sessions() as session:
            parts = _existing(session)
            if parts is None:
                try:
                    _create(session, self.vault)
                except IntegrityError:  # another worker created it first
                    session.rollback()
                parts = _existing(session)
                if parts is None:
                    raise InternalError("the demo bundle could not be created")
            live = repository.count_live_tokens(session, bundle_id=parts.bundle.id)
            if live >= self.max_live_tokens:
                raise Overloaded(retry_after_s=DEMO_RETRY_AFTER_S)
            key = _bundle_key(ensure_bundle_hmac_secret(session, self.vault, parts.bundle))
            issued = repository.issue_token(
                session,
                user=parts.user,
                application=parts.application,
                refresh_lifetime_s=self.refresh_lifetime_s,
            )
            session.commit()
            return DemoSession(
                access_token=issued.access_token,
                expires_in_s=issued.expires_in_s,
                trials=parts.bundle.token_trials,
                bundle_key=key,
            )

    def face_boxes(self, *, access_token: str, transaction_id: str) -> dict[str, Any]:
        """``{"first", "second"}``: the boxes of a transaction made with ``access_token``;
        any other transaction, or an unknown token, is :class:`TransactionNotFound`."""
        with self.sessions() as session:
            found = repository.find_token(session, access_token=access_token)
            transaction = repository.get_transaction(session, transaction_id=transaction_id)
            if found is None or transaction is None or transaction.token_id != found.id:
                raise TransactionNotFound()
            return {"first": transaction.first_box, "second": transaction.second_box}
