"""Persistence functions: each takes the session explicitly, keyword-only arguments.

Callers own the database transaction (commit/rollback); these functions only
flush when they need generated ids. Counters several workers race on (token
trials, bundle quota, refresh tokens) change in one atomic SQL statement
(``UPDATE … WHERE … RETURNING``), never read-modify-write in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from facematch.settings import MAX_TOKEN_LIFETIME_S
from facematch.store import security
from facematch.store.models import (
    FACE_MATCH,
    PENDING,
    SUCCESS,
    AccessToken,
    Application,
    Bundle,
    Organisation,
    Transaction,
    TransactionImage,
    User,
    new_transaction_id,
    utcnow,
)
from facematch.store.sealed import new_hmac_secret, seal_bundle_hmac_secret
from facematch.store.vault import Vault, key_id_of
from facematch.store.views import TokenRef

DEFAULT_SCOPE = "read write"
# Longest username and client id a row can hold (the columns' lengths).
USERNAME_MAX_CHARS = 150
CLIENT_ID_MAX_CHARS = 100


def _could_be_stored(text: str, *, max_chars: int) -> bool:
    """Whether ``text`` could be a stored value: a client-sent string that cannot
    (NUL, which PostgreSQL refuses with an error; unencodable text; too long) is
    answered as "no such row" without a query."""
    if len(text) > max_chars or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class NotFoundError(LookupError):
    """An admin command named a row that does not exist."""


class AlreadyExistsError(ValueError):
    """An admin command would create a duplicate (organisation name, username)."""


# --- organisations, users ----------------------------------------------------


def create_organisation(session: Session, *, name: str) -> Organisation:
    if find_organisation(session, name=name) is not None:
        raise AlreadyExistsError(f"organisation {name!r} already exists")
    organisation = Organisation(name=name)
    session.add(organisation)
    session.flush()
    return organisation


def get_organisation(session: Session, *, name: str) -> Organisation:
    organisation = find_organisation(session, name=name)
    if organisation is None:
        raise NotFoundError(f"no organisation named {name!r}")
    return organisation


def find_organisation(session: Session, *, name: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.name == name))


def create_user(
    session: Session, *, organisation: Organisation, username: str, password: str
) -> User:
    if find_user(session, username=username) is not None:
        raise AlreadyExistsError(f"user {username!r} already exists")
    user = User(
        organisation_id=organisation.id,
        username=username,
        password_hash=security.hash_password(password),
        active=True,
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, *, username: str) -> User:
    user = find_user(session, username=username)
    if user is None:
        raise NotFoundError(f"no user named {username!r}")
    return user


def find_user(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def get_active_user(session: Session, *, user_id: int) -> User | None:
    """The user with this id while it is active, else None."""
    user = session.get(User, user_id)
    return user if user is not None and user.active else None


def deactivate_user(session: Session, *, username: str) -> tuple[User, int]:
    """Deactivate a user and revoke its live tokens; (user, tokens revoked)."""
    user = get_user(session, username=username)
    user.active = False
    session.flush()
    return user, revoke_tokens(session, user_id=user.id)


def authenticate_user(session: Session, *, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same cost either way).

    A hash made with older scrypt parameters is replaced by one at today's on
    this successful login (flushed; the caller commits).
    """
    user = None
    if _could_be_stored(username, max_chars=USERNAME_MAX_CHARS):
        user = session.scalar(select(User).where(User.username == username))
    if user is None:
        security.verify_dummy_password(password)
        return None
    if not security.verify_password(password, user.password_hash) or not user.active:
        return None
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
        session.flush()
    return user


# --- bundles -----------------------------------------------------------------


def create_bundle(
    session: Session,
    *,
    organisation: Organisation,
    enabled_services: Sequence[str] = (FACE_MATCH,),
    quota: int | None = None,
    token_trials: int = 3,
    token_lifetime_s: int = 600,
    store_images: bool = True,
    retention_days: int = 30,
    vault: Vault | None = None,
) -> tuple[Bundle, str]:
    """A new bundle and its key (the key is shown once; only its digest is stored).

    With ``vault`` the bundle gets its HMAC secret now, sealed under the image keys;
    a bundle made without one gets it in the opening commit of its first face match.
    """
    key = security.new_bundle_key()
    bundle = Bundle(
        organisation_id=organisation.id,
        key_hash=security.digest_secret(key),
        key_prefix=security.key_prefix(key),
        enabled_services=list(enabled_services),
        quota_remaining=quota,
        token_trials=token_trials,
        token_lifetime_s=token_lifetime_s,
        store_images=store_images,
        retention_days=retention_days,
        active=True,
    )
    session.add(bundle)
    session.flush()
    if vault is not None:
        seal_bundle_hmac_secret(vault, bundle, new_hmac_secret())
        session.flush()
    return bundle, key


def get_bundle(session: Session, *, bundle_id: int) -> Bundle:
    bundle = session.get(Bundle, bundle_id)
    if bundle is None:
        raise NotFoundError(f"no bundle with id {bundle_id}")
    return bundle


def find_bundle_by_key(session: Session, *, key: str) -> Bundle | None:
    """The active bundle whose key is ``key``, or None."""
    digest = security.digest_secret(key)
    bundle = session.scalar(select(Bundle).where(Bundle.key_hash == digest))
    if bundle is None or not bundle.active or not security.secret_matches(key, bundle.key_hash):
        return None
    return bundle


def rotate_bundle_key(session: Session, *, bundle_id: int) -> tuple[Bundle, str]:
    """Give the bundle a new key; the old one stops working at commit."""
    bundle = get_bundle(session, bundle_id=bundle_id)
    key = security.new_bundle_key()
    bundle.key_hash = security.digest_secret(key)
    bundle.key_prefix = security.key_prefix(key)
    session.flush()
    return bundle, key


def recharge_bundle(
    session: Session,
    *,
    bundle_id: int,
    add: int | None = None,
    set_to: int | None = None,
    unlimited: bool = False,
) -> Bundle:
    """Add to, set, or lift the bundle's transaction quota (atomically for ``add``)."""
    if [add is not None, set_to is not None, unlimited].count(True) != 1:
        raise ValueError("give exactly one of add, set_to, unlimited")
    bundle = get_bundle(session, bundle_id=bundle_id)
    values: dict[str, Any]
    if unlimited:
        values = {"quota_remaining": None}
    elif set_to is not None:
        values = {"quota_remaining": set_to}
    else:
        # COALESCE: adding to an unlimited bundle starts a quota at ``add``.
        values = {"quota_remaining": func.coalesce(Bundle.quota_remaining, 0) + add}
    session.execute(update(Bundle).where(Bundle.id == bundle.id).values(**values))
    session.refresh(bundle)
    return bundle


def consume_quota(session: Session, *, bundle_id: int) -> bool:
    """Take one transaction from the bundle's quota; False when none is left.

    The UPDATE locks the bundle row until the caller commits: call it as the last
    statement before the commit, after any heavy insert (docs/performance.md).
    """
    row = session.execute(
        update(Bundle)
        .where(
            Bundle.id == bundle_id,
            Bundle.active.is_(True),
            (Bundle.quota_remaining.is_(None)) | (Bundle.quota_remaining > 0),
        )
        .values(quota_remaining=Bundle.quota_remaining - 1)
        .returning(Bundle.id)
    ).first()
    return row is not None


# --- OAuth applications and tokens --------------------------------------------


def create_application(
    session: Session, *, organisation: Organisation, bundle: Bundle, name: str
) -> tuple[Application, str]:
    """A new OAuth client and its secret (shown once; only its digest is stored)."""
    if bundle.organisation_id != organisation.id:
        raise ValueError("the bundle belongs to another organisation")
    secret = security.new_client_secret()
    application = Application(
        organisation_id=organisation.id,
        bundle_id=bundle.id,
        name=name,
        client_id=security.new_client_id(),
        client_secret_hash=security.digest_secret(secret),
        active=True,
    )
    session.add(application)
    session.flush()
    return application, secret


def first_application(session: Session, *, organisation_id: int) -> Application | None:
    """One OAuth application of the organisation (the demo's only one)."""
    return session.scalar(
        select(Application).where(Application.organisation_id == organisation_id).limit(1)
    )


def deactivate_application(session: Session, *, client_id: str) -> tuple[Application, int]:
    """Deactivate an OAuth application and revoke its live tokens; (app, tokens revoked)."""
    application = get_application(session, client_id=client_id)
    application.active = False
    session.flush()
    return application, revoke_tokens(session, application_id=application.id)


def authenticate_application(
    session: Session, *, client_id: str, client_secret: str
) -> Application | None:
    if not _could_be_stored(client_id, max_chars=CLIENT_ID_MAX_CHARS):
        return None
    application = session.scalar(select(Application).where(Application.client_id == client_id))
    if application is None or not application.active:
        return None
    if not security.secret_matches(client_secret, application.client_secret_hash):
        return None
    return application


@dataclass(frozen=True)
class IssuedToken:
    row: AccessToken
    access_token: str
    refresh_token: str
    expires_in_s: int


def issue_token(
    session: Session,
    *,
    user: User,
    application: Application,
    refresh_lifetime_s: int,
    now: datetime | None = None,
) -> IssuedToken:
    """A new access/refresh token pair with the trials and lifetime of the app's bundle."""
    now = now or utcnow()
    bundle = session.get(Bundle, application.bundle_id)
    if bundle is None:
        raise NotFoundError(f"application {application.client_id} has no bundle")
    # Rows written before the bound existed may hold more: they get the bound.
    lifetime_s = min(bundle.token_lifetime_s, MAX_TOKEN_LIFETIME_S)
    access, refresh = security.new_token(), security.new_token()
    row = AccessToken(
        token_hash=security.digest_secret(access),
        refresh_token_hash=security.digest_secret(refresh),
        user_id=user.id,
        application_id=application.id,
        organisation_id=application.organisation_id,
        bundle_id=bundle.id,
        scope=DEFAULT_SCOPE,
        trials_remaining=bundle.token_trials,
        expires_at=now + timedelta(seconds=lifetime_s),
        refresh_expires_at=now + timedelta(seconds=refresh_lifetime_s),
    )
    session.add(row)
    session.flush()
    return IssuedToken(row, access, refresh, lifetime_s)


def redeem_refresh_token(
    session: Session, *, refresh_token: str, application: Application, now: datetime | None = None
) -> AccessToken | None:
    """Revoke the token pair of ``refresh_token`` and return it, once only.

    The single UPDATE makes two concurrent refreshes with the same token yield
    one new pair, not two.
    """
    now = now or utcnow()
    digest = security.digest_secret(refresh_token)
    token_id = session.execute(
        update(AccessToken)
        .where(
            AccessToken.refresh_token_hash == digest,
            AccessToken.application_id == application.id,
            AccessToken.revoked_at.is_(None),
            AccessToken.refresh_expires_at > now,
        )
        .values(revoked_at=now)
        .returning(AccessToken.id)
    ).scalar()
    if token_id is None:
        return None
    return session.get(AccessToken, token_id)


def find_token(session: Session, *, access_token: str) -> AccessToken | None:
    """The token row of ``access_token`` while its user and application are active.

    Deactivation revokes live tokens too; this check also covers a row made
    inactive any other way (by hand, by an older version) after its tokens were
    issued.
    """
    digest = security.digest_secret(access_token)
    row = session.scalar(
        select(AccessToken)
        .join(User, User.id == AccessToken.user_id)
        .join(Application, Application.id == AccessToken.application_id)
        .where(
            AccessToken.token_hash == digest,
            User.active.is_(True),
            Application.active.is_(True),
        )
    )
    if row is None or not security.secret_matches(access_token, row.token_hash):
        return None
    return row


def get_token(session: Session, *, token_id: int) -> AccessToken | None:
    """The token row by id, as it is now (refreshed if the session holds it)."""
    token = session.get(AccessToken, token_id, populate_existing=True)
    return token


def count_live_tokens(session: Session, *, bundle_id: int) -> int:
    """How many of the bundle's tokens have not expired yet."""
    live = session.scalar(
        select(func.count())
        .select_from(AccessToken)
        .where(AccessToken.bundle_id == bundle_id, AccessToken.expires_at > utcnow())
    )
    return int(live or 0)


def consume_trial(session: Session, *, token_id: int, now: datetime | None = None) -> int | None:
    """Take one trial from a live token; the trials left, or None if it had none
    (or expired, or was revoked) — decided by one atomic UPDATE."""
    now = now or utcnow()
    return session.execute(
        update(AccessToken)
        .where(
            AccessToken.id == token_id,
            AccessToken.trials_remaining > 0,
            AccessToken.expires_at > now,
            AccessToken.revoked_at.is_(None),
        )
        .values(trials_remaining=AccessToken.trials_remaining - 1)
        .returning(AccessToken.trials_remaining)
    ).scalar()


def revoke_tokens(
    session: Session,
    *,
    organisation_id: int | None = None,
    user_id: int | None = None,
    application_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Revoke every live token matching all given filters; how many were revoked."""
    now = now or utcnow()
    statement = update(AccessToken).where(AccessToken.revoked_at.is_(None))
    if organisation_id is not None:
        statement = statement.where(AccessToken.organisation_id == organisation_id)
    if user_id is not None:
        statement = statement.where(AccessToken.user_id == user_id)
    if application_id is not None:
        statement = statement.where(AccessToken.application_id == application_id)
    result = session.execute(statement.values(revoked_at=now).returning(AccessToken.id))
    return len(result.all())


# --- transactions ------------------------------------------------------------


def create_transaction(
    session: Session,
    *,
    token: AccessToken | TokenRef,
    bundle_id: int,
    service: str,
    reference_transaction_id: str | None = None,
    transaction_id: str | None = None,
) -> Transaction:
    """A ``pending`` transaction of the token's user, charged to ``bundle_id``.

    ``transaction_id`` lets the caller seal data for the row before inserting it.
    """
    transaction = Transaction(
        id=transaction_id or new_transaction_id(),
        organisation_id=token.organisation_id,
        user_id=token.user_id,
        bundle_id=bundle_id,
        token_id=token.id,
        service=service,
        outcome=PENDING,
        reference_transaction_id=reference_transaction_id,
    )
    session.add(transaction)
    session.flush()
    return transaction


def finish_transaction(
    session: Session,
    *,
    transaction_id: str,
    outcome: str,
    processing_ms: float,
    error_code: int | None = None,
    is_similar: bool | None = None,
    confidence: float | None = None,
    distance: float | None = None,
    first_box: dict[str, int] | None = None,
    second_box: dict[str, int] | None = None,
    reference_model_id: str | None = None,
    reference_embedding: bytes | None = None,
) -> bool:
    """Record the outcome of a ``pending`` transaction; False if it was no longer pending
    (closed as ``abandoned`` by the sweep), in which case nothing is written.

    The reference descriptor is written by a second conditional UPDATE that never
    lands on a purged row: a purge that ran while the call was in flight wins, and
    the biometric descriptor is not resurrected on a row no later purge selects.
    """
    recorded = session.execute(
        update(Transaction)
        .where(Transaction.id == transaction_id, Transaction.outcome == PENDING)
        .values(
            outcome=outcome,
            processing_ms=processing_ms,
            error_code=error_code,
            is_similar=is_similar,
            confidence=confidence,
            distance=distance,
            first_box=first_box,
            second_box=second_box,
        )
        .returning(Transaction.id),
        execution_options={"synchronize_session": False},
    ).first()
    if recorded is None:
        return False
    if reference_embedding is not None:
        session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id, Transaction.images_purged_at.is_(None))
            .values(
                reference_model_id=reference_model_id,
                reference_embedding=reference_embedding,
                reference_key_id=key_id_of(reference_embedding),
            ),
            execution_options={"synchronize_session": False},
        )
    return True


def discard_transaction(session: Session, *, transaction_id: str) -> None:
    """Delete a transaction inserted in the current database transaction, with its images
    (a call refused after its row was written, when the rest must still commit)."""
    session.execute(
        delete(TransactionImage).where(TransactionImage.transaction_id == transaction_id),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        delete(Transaction).where(Transaction.id == transaction_id),
        execution_options={"synchronize_session": False},
    )


def find_reference_transaction(
    session: Session, *, transaction_id: str, organisation_id: int, service: str = FACE_MATCH
) -> Transaction | None:
    """A successful, unpurged transaction of this organisation that stored a reference face.

    A purged row is never a reference, even one that still holds a descriptor
    (written by an in-flight call before the conditional finish existed).
    """
    return session.scalar(
        select(Transaction).where(
            Transaction.id == transaction_id,
            Transaction.organisation_id == organisation_id,
            Transaction.service == service,
            Transaction.outcome == SUCCESS,
            Transaction.reference_embedding.is_not(None),
            Transaction.images_purged_at.is_(None),
        )
    )


def get_transaction(session: Session, *, transaction_id: str) -> Transaction | None:
    return session.get(Transaction, transaction_id)


def find_own_transaction(
    session: Session, *, organisation_id: int, transaction_id: str
) -> Transaction | None:
    """The transaction ``transaction_id`` if it belongs to the organisation (else None,
    exactly as if it did not exist: ids of other organisations cannot be probed)."""
    return session.scalar(
        select(Transaction).where(
            Transaction.id == transaction_id, Transaction.organisation_id == organisation_id
        )
    )


def transactions_of_token(
    session: Session, *, organisation_id: int, access_token: str
) -> Sequence[Transaction] | None:
    """Every transaction made with the organisation's token ``access_token``, oldest
    first; None when the organisation has no such token."""
    token_id = session.scalar(
        select(AccessToken.id).where(
            AccessToken.token_hash == security.digest_secret(access_token),
            AccessToken.organisation_id == organisation_id,
        )
    )
    if token_id is None:
        return None
    return session.scalars(
        select(Transaction)
        .where(Transaction.token_id == token_id, Transaction.organisation_id == organisation_id)
        .order_by(Transaction.created_at, Transaction.id)
    ).all()


def organisation_public_key_pem(session: Session, *, organisation_id: int) -> str | None:
    """The organisation's registered RSA public key (PEM), if any."""
    return session.scalar(
        select(Organisation.rsa_public_key_pem).where(Organisation.id == organisation_id)
    )


# --- listings (never secrets) --------------------------------------------------


def list_organisations(session: Session) -> Sequence[Organisation]:
    return session.scalars(select(Organisation).order_by(Organisation.id)).all()


def list_users(session: Session, *, organisation_id: int | None = None) -> Sequence[User]:
    statement = select(User).order_by(User.id)
    if organisation_id is not None:
        statement = statement.where(User.organisation_id == organisation_id)
    return session.scalars(statement).all()


def list_applications(
    session: Session, *, organisation_id: int | None = None
) -> Sequence[Application]:
    statement = select(Application).order_by(Application.id)
    if organisation_id is not None:
        statement = statement.where(Application.organisation_id == organisation_id)
    return session.scalars(statement).all()


def list_bundles(session: Session, *, organisation_id: int | None = None) -> Sequence[Bundle]:
    statement = select(Bundle).order_by(Bundle.id)
    if organisation_id is not None:
        statement = statement.where(Bundle.organisation_id == organisation_id)
    return session.scalars(statement).all()


def count_applications(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Application)) or 0


def get_application(session: Session, *, client_id: str) -> Application:
    application = session.scalar(select(Application).where(Application.client_id == client_id))
    if application is None:
        raise NotFoundError(f"no application with client_id {client_id!r}")
    return application
