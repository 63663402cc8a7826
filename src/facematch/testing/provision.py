"""A client of a running server, written straight into its database, and what the
database recorded afterwards.

The store's own functions do the writing (the admin CLI is a thin shell over
the same functions), so provisioning costs no subprocess and returns the ids
that exactness checks need.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from facematch.store import db, repository
from facematch.store.models import AccessToken, Bundle, Transaction
from facematch.store.security import digest_secret

TOKEN_PATH = "/api/o/token/"


@dataclass(frozen=True)
class Credentials:
    """Everything a client of the service is given, plus ids for assertions."""

    username: str
    password: str
    client_id: str
    client_secret: str
    bundle_key: str
    organisation_id: int
    bundle_id: int
    application_id: int
    user_id: int


def create_client(
    session: Session,
    *,
    quota: int | None = None,
    token_trials: int = 3,
    token_lifetime_s: int = 600,
    services: tuple[str, ...] = ("face_match",),
    name: str = "harness",
) -> Credentials:
    """A new organisation (``org-<suffix>``) with one user (``user-<suffix>``), bundle and
    OAuth application (``name``), in ``session``."""
    suffix = uuid.uuid4().hex[:10]
    password = f"pw-{suffix}"
    org = repository.create_organisation(session, name=f"org-{suffix}")
    user = repository.create_user(
        session, organisation=org, username=f"user-{suffix}", password=password
    )
    bundle, key = repository.create_bundle(
        session,
        organisation=org,
        enabled_services=services,
        quota=quota,
        token_trials=token_trials,
        token_lifetime_s=token_lifetime_s,
    )
    app, secret = repository.create_application(session, organisation=org, bundle=bundle, name=name)
    return Credentials(
        username=user.username,
        password=password,
        client_id=app.client_id,
        client_secret=secret,
        bundle_key=key,
        organisation_id=org.id,
        bundle_id=bundle.id,
        application_id=app.id,
        user_id=user.id,
    )


def provision(
    database_url: str,
    *,
    quota: int | None = None,
    token_trials: int = 3,
    token_lifetime_s: int = 600,
    services: tuple[str, ...] = ("face_match",),
    name: str = "harness",
) -> Credentials:
    """:func:`create_client` in the database at ``database_url``, migrated first (so
    this may run before a server's first start)."""
    engine = db.create_db_engine(database_url)
    db.migrate(engine)
    try:
        with db.session_scope(db.create_session_factory(engine)) as session:
            return create_client(
                session,
                quota=quota,
                token_trials=token_trials,
                token_lifetime_s=token_lifetime_s,
                services=services,
                name=name,
            )
    finally:
        engine.dispose()


def token_from(url: str, client: Credentials) -> str:
    """An access token from the server's password grant (the real OAuth path)."""
    response = httpx.post(
        f"{url}{TOKEN_PATH}",
        data={
            "grant_type": "password",
            "username": client.username,
            "password": client.password,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"token grant refused ({response.status_code}): {response.text}")
    return str(response.json()["access_token"])


@dataclass(frozen=True)
class Ledger:
    """What the database says happened, for exactness checks."""

    transactions: dict[str, tuple[str, int | None, bool | None]]  # id → outcome, code, similar
    quota_remaining: int | None
    trials_remaining: dict[str, int]  # access token → trials left


def ledger(database_url: str, *, bundle_id: int, tokens: list[str]) -> Ledger:
    """The bundle's transactions and quota, and each token's trials, as stored."""
    engine = db.create_db_engine(database_url)
    try:
        with db.create_session_factory(engine)() as session:
            rows = session.execute(
                select(
                    Transaction.id,
                    Transaction.outcome,
                    Transaction.error_code,
                    Transaction.is_similar,
                ).where(Transaction.bundle_id == bundle_id)
            ).all()
            bundle = session.get(Bundle, bundle_id)
            trials = {}
            for token in tokens:
                row = session.execute(
                    select(AccessToken).where(AccessToken.token_hash == digest_secret(token))
                ).scalar_one()
                trials[token] = row.trials_remaining
            return Ledger(
                transactions={row[0]: (row[1], row[2], row[3]) for row in rows},
                quota_remaining=bundle.quota_remaining if bundle else None,
                trials_remaining=trials,
            )
    finally:
        engine.dispose()
