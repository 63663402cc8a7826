"""Table models (SQLAlchemy 2.0 typed declarative).

These classes hold hashes, ciphertexts and embeddings; they are never returned
by the HTTP layer directly (see :mod:`facematch.service.api.schemas`).

Ownership: an ``Organisation`` (a client company) owns users, bundles and OAuth
applications. Each application belongs to one bundle: tokens issued through it
record that bundle (``AccessToken.bundle_id``) and take their trials and
lifetime from it, and a service call's ``bundle_key`` must be the key of that
same bundle (enforced in :func:`facematch.service.application.face_match.own_bundle`): a
token never spends the quota of another bundle, even one of its organisation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from facematch.settings import MAX_TOKEN_LIFETIME_S
from facematch.store.vault import key_id_of

# Stable constraint names so Alembic migrations are identical on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FACE_MATCH = "face_match"
SERVICES = (FACE_MATCH,)


class Outcome(StrEnum):
    """A transaction's outcome. ``pending`` while the call runs; the other three are
    final. ``abandoned``: the call died before recording an outcome (worker killed,
    request cut off) and the housekeeping sweep closed it (docs/transactions.md).
    Stored as its text."""

    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"
    ABANDONED = "abandoned"


class ImageRole(StrEnum):
    """Which image of a face-match call a stored image is (stored as its text)."""

    FIRST = "first"  # the selfie, ``first_img``
    SECOND = "second"  # the ID document, ``second_img``


PENDING, SUCCESS, ERROR, ABANDONED = Outcome
OUTCOMES = tuple(Outcome)
IMAGE_ROLES = tuple(ImageRole)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_transaction_id() -> str:
    """Unguessable transaction id (uuid4: 122 random bits from the OS)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zone type: values are stored as naive UTC and given their
    zone back on load, so comparisons in SQL (``expires_at > :now``) are
    consistent on SQLite and PostgreSQL alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime}  # noqa: RUF012


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # PEM of the RSA key the client registered for encrypted inquiry responses.
    rsa_public_key_pem: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="organisation")
    bundles: Mapped[list[Bundle]] = relationship(back_populates="organisation")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="users")


class Bundle(Base):
    __tablename__ = "bundles"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    enabled_services: Mapped[list[str]] = mapped_column(JSON, default=lambda: [FACE_MATCH])
    # None = unlimited transactions.
    quota_remaining: Mapped[int | None] = mapped_column(Integer)
    token_trials: Mapped[int] = mapped_column(Integer, default=3)
    token_lifetime_s: Mapped[int] = mapped_column(Integer, default=600)
    store_images: Mapped[bool] = mapped_column(Boolean, default=True)
    retention_days: Mapped[int] = mapped_column(Integer, default=30)
    # Per-bundle key for signing responses (encrypted at rest by the signing layer).
    hmac_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="bundles")

    @validates("token_lifetime_s")
    def _bounded_lifetime(self, _key: str, seconds: int) -> int:
        # The store refuses what the CLI refuses, whoever writes the row.
        if not 1 <= seconds <= MAX_TOKEN_LIFETIME_S:
            raise ValueError(f"token lifetime must be 1..{MAX_TOKEN_LIFETIME_S} s, not {seconds}")
        return seconds


class Application(Base):
    """An OAuth client (client_id / client_secret) of one organisation and bundle."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship()
    bundle: Mapped[Bundle] = relationship()


class AccessToken(Base):
    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), index=True)
    scope: Mapped[str] = mapped_column(String(200), default="read write")
    trials_remaining: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column()
    refresh_expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transaction(Base):
    """One service call that reached a service, successful or not."""

    __tablename__ = "transactions"
    # The sweep of stale ``pending`` rows reads only them, oldest first, however
    # large the table (migration 0003).
    __table_args__ = (Index("ix_transactions_outcome_created_at", "outcome", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_transaction_id)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("access_tokens.id"), index=True)
    service: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # One of OUTCOMES: 'pending' while the call runs, then 'success', 'error' or
    # (swept after its deadline) 'abandoned'.
    outcome: Mapped[str] = mapped_column(String(16), default=PENDING)
    error_code: Mapped[int | None] = mapped_column(Integer)
    is_similar: Mapped[bool | None] = mapped_column(Boolean)
    confidence: Mapped[float | None] = mapped_column(Float)
    distance: Mapped[float | None] = mapped_column(Float)
    first_box: Mapped[dict[str, int] | None] = mapped_column(JSON)
    second_box: Mapped[dict[str, int] | None] = mapped_column(JSON)
    processing_ms: Mapped[float | None] = mapped_column(Float)
    # Descriptor of the reference (ID-document) face: float32 bytes + the model
    # that made it, so later calls can match against it without the image.
    reference_model_id: Mapped[str | None] = mapped_column(String(100))
    reference_embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Key the descriptor is sealed under (as for images), so that key usage and
    # rotation are queries instead of a read of every sealed descriptor.
    reference_key_id: Mapped[str | None] = mapped_column(String(100), index=True)
    reference_transaction_id: Mapped[str | None] = mapped_column(
        ForeignKey("transactions.id"), index=True
    )
    images_purged_at: Mapped[datetime | None] = mapped_column()

    @validates("reference_embedding")
    def _keep_reference_key_id(self, _key: str, sealed: bytes | None) -> bytes | None:
        # Set through the ORM, the descriptor brings its key id along; the store's
        # UPDATE statements (finish, reseal, purge) set both columns themselves.
        self.reference_key_id = key_id_of(sealed) if sealed is not None else None
        return sealed


class TransactionImage(Base):
    """An input image of a transaction, encrypted at rest."""

    __tablename__ = "transaction_images"
    __table_args__ = (UniqueConstraint("transaction_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # an ImageRole
    key_id: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
