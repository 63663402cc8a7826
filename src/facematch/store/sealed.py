"""Sealed (encrypted-at-rest) data of the store: transaction images, reference face
descriptors and bundle HMAC secrets.

Everything here goes through a :class:`~facematch.store.vault.Vault`; the
context strings bind each ciphertext to the row it belongs to, so ciphertexts
cannot be swapped between transactions, roles or bundles.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facematch.store.models import IMAGE_ROLES, Bundle, Transaction, TransactionImage
from facematch.store.vault import Vault, key_id_of

HMAC_SECRET_BYTES = 32

# Magic numbers of the formats the engine accepts; anything else is stored as opaque bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


class SealedDataError(Exception):
    """Sealed data the store needs is missing (e.g. a bundle without an HMAC secret)."""


@dataclass(frozen=True)
class StoredImage:
    """A decrypted transaction image."""

    role: str
    content_type: str
    data: bytes


def sniff_content_type(data: bytes) -> str:
    """The image MIME type from the first bytes (the client's bytes are stored as sent)."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def image_context(transaction_id: str, role: str) -> str:
    return f"image:{transaction_id}:{role}"


def reference_context(transaction_id: str) -> str:
    return f"reference-face:{transaction_id}"


def seal_reference_embedding(vault: Vault, transaction_id: str, embedding: bytes) -> bytes:
    """The reference face's descriptor (float32 bytes) encrypted for ``transaction_id``'s row.

    A descriptor is biometric data: it identifies the person as well as the photo
    does, so it is kept under the same keys as the images.
    """
    return vault.seal(embedding, context=reference_context(transaction_id))


def open_reference_embedding(vault: Vault, transaction_id: str, blob: bytes) -> bytes:
    """The descriptor stored on ``transaction_id``'s row, decrypted."""
    return vault.open(blob, context=reference_context(transaction_id))


def seal_transaction_images(
    vault: Vault, *, transaction_id: str, images: Mapping[str, bytes]
) -> list[TransactionImage]:
    """The images of a transaction (``{"first": bytes, ...}``) as encrypted rows, not yet
    added to any session: pure CPU work, done before the call touches the database."""
    rows = []
    for role, data in images.items():
        if role not in IMAGE_ROLES:
            raise ValueError(f"unknown image role {role!r}")
        blob = vault.seal(data, context=image_context(transaction_id, role))
        rows.append(
            TransactionImage(
                transaction_id=transaction_id,
                role=role,
                key_id=key_id_of(blob),
                ciphertext=blob,
                content_type=sniff_content_type(data),
            )
        )
    return rows


def store_transaction_images(
    session: Session, vault: Vault, *, transaction_id: str, images: Mapping[str, bytes]
) -> list[TransactionImage]:
    """Encrypt and add the images of a transaction (``{"first": bytes, ...}``) to the session."""
    rows = seal_transaction_images(vault, transaction_id=transaction_id, images=images)
    session.add_all(rows)
    return rows


def load_transaction_images(
    session: Session, vault: Vault, *, transaction_id: str
) -> list[StoredImage]:
    """The decrypted images of a transaction, ``first`` before ``second``."""
    rows = session.scalars(
        select(TransactionImage).where(TransactionImage.transaction_id == transaction_id)
    ).all()
    images = [
        StoredImage(
            role=row.role,
            content_type=row.content_type,
            data=vault.open(row.ciphertext, context=image_context(transaction_id, row.role)),
        )
        for row in rows
    ]
    return sorted(images, key=lambda image: IMAGE_ROLES.index(image.role))


def new_hmac_secret() -> str:
    """A fresh per-bundle HMAC secret (256 bits, URL-safe text; its UTF-8 bytes are the key)."""
    return secrets.token_urlsafe(HMAC_SECRET_BYTES)


def _hmac_context(bundle: Bundle) -> str:
    # The id, not the bundle key's hash: that one changes when the key is rotated.
    if bundle.id is None:
        raise ValueError("flush the bundle (so it has an id) before sealing its HMAC secret")
    return f"bundle-hmac:{bundle.id}"


def seal_bundle_hmac_secret(vault: Vault, bundle: Bundle, secret: str) -> None:
    """Store ``secret`` encrypted on ``bundle`` (which must have been flushed)."""
    bundle.hmac_secret_ciphertext = vault.seal_text(secret, context=_hmac_context(bundle))


def bundle_hmac_secret(vault: Vault, bundle: Bundle) -> str:
    """The bundle's HMAC secret in clear, to sign a response."""
    if bundle.hmac_secret_ciphertext is None:
        raise SealedDataError(f"bundle {bundle.key_prefix} has no HMAC secret")
    return vault.open_text(bundle.hmac_secret_ciphertext, context=_hmac_context(bundle))


def ensure_bundle_hmac_secret(session: Session, vault: Vault, bundle: Bundle) -> str:
    """The bundle's HMAC secret, created (and committed by the caller) if it has none.

    Bundles normally get their secret at creation; this covers older bundles.
    The conditional UPDATE makes concurrent first requests agree on one secret.
    """
    if bundle.hmac_secret_ciphertext is None:
        candidate = vault.seal_text(new_hmac_secret(), context=_hmac_context(bundle))
        session.execute(
            update(Bundle)
            .where(Bundle.id == bundle.id, Bundle.hmac_secret_ciphertext.is_(None))
            .values(hmac_secret_ciphertext=candidate)
        )
        session.flush()
        session.refresh(bundle, attribute_names=["hmac_secret_ciphertext"])
    return bundle_hmac_secret(vault, bundle)


def rotate_bundle_hmac_secret(vault: Vault, bundle: Bundle) -> str:
    """Give the bundle a new HMAC secret (clients must switch to it); returns it."""
    secret = new_hmac_secret()
    seal_bundle_hmac_secret(vault, bundle, secret)
    return secret


# Images are up to 5 MiB each: few per batch keeps a batch's memory bounded.
IMAGE_RESEAL_BATCH = 20
DESCRIPTOR_RESEAL_BATCH = 500


def reseal_all(
    session: Session,
    vault: Vault,
    *,
    image_batch_size: int = IMAGE_RESEAL_BATCH,
    descriptor_batch_size: int = DESCRIPTOR_RESEAL_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Re-encrypt every image, reference descriptor and HMAC secret not under the primary
    key, committing each batch; returns the count.

    Each batch is its own database transaction, so writers wait for one batch at
    most (not for the whole run), and a run stopped at any point leaves every row
    sealed either under its old key or under the primary one, both configured:
    running it again picks up what is left. ``on_batch`` is told the running count
    after each commit.
    """
    count = 0

    def committed(rows: int) -> None:
        nonlocal count
        session.commit()
        count += rows
        if on_batch is not None:
            on_batch(count)

    last_id = 0
    while True:
        rows = session.execute(
            select(
                TransactionImage.id,
                TransactionImage.transaction_id,
                TransactionImage.role,
                TransactionImage.ciphertext,
            )
            .where(TransactionImage.key_id != vault.primary_key_id, TransactionImage.id > last_id)
            .order_by(TransactionImage.id)
            .limit(image_batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            blob = vault.reseal(row.ciphertext, context=image_context(row.transaction_id, row.role))
            # By id, not through the ORM: an image purged meanwhile is simply not there.
            session.execute(
                update(TransactionImage)
                .where(TransactionImage.id == row.id)
                .values(ciphertext=blob, key_id=key_id_of(blob)),
                execution_options={"synchronize_session": False},
            )
        last_id = rows[-1].id
        committed(len(rows))
    _reseal_reference_embeddings(session, vault, batch_size=descriptor_batch_size, done=committed)
    bundles = 0
    for bundle in session.scalars(select(Bundle).where(Bundle.hmac_secret_ciphertext.is_not(None))):
        sealed_secret = bundle.hmac_secret_ciphertext
        if sealed_secret is not None and vault.needs_reseal(sealed_secret):
            bundle.hmac_secret_ciphertext = vault.reseal(
                sealed_secret, context=_hmac_context(bundle)
            )
            bundles += 1
    if bundles:
        committed(bundles)
    return count


def _reseal_reference_embeddings(
    session: Session, vault: Vault, *, batch_size: int, done: Callable[[int], None]
) -> None:
    # By batches of the rows sealed under another key, in id order: only one batch
    # is ever in memory, and rows already under the primary key are never read.
    last_id = ""
    while True:
        rows = session.execute(
            select(Transaction.id, Transaction.reference_embedding)
            .where(
                Transaction.reference_embedding.is_not(None),
                Transaction.reference_key_id != vault.primary_key_id,
                Transaction.id > last_id,
            )
            .order_by(Transaction.id)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            sealed = vault.reseal(row.reference_embedding, context=reference_context(row.id))
            # Only if the descriptor is still the one read: a purge in between wins.
            session.execute(
                update(Transaction)
                .where(
                    Transaction.id == row.id,
                    Transaction.reference_embedding.is_not(None),
                    Transaction.images_purged_at.is_(None),
                )
                .values(reference_embedding=sealed, reference_key_id=key_id_of(sealed)),
                execution_options={"synchronize_session": False},
            )
        last_id = rows[-1].id
        done(len(rows))


def key_usage(session: Session) -> dict[str, int]:
    """How many stored images and reference descriptors each key id encrypts (to know
    when an old key can go)."""
    rows = session.execute(
        select(TransactionImage.key_id, func.count()).group_by(TransactionImage.key_id)
    ).all()
    usage = {key_id: int(count) for key_id, count in rows}
    references = session.execute(
        select(Transaction.reference_key_id, func.count())
        .where(Transaction.reference_embedding.is_not(None))
        .group_by(Transaction.reference_key_id)
    ).all()
    for key_id, count in references:
        if key_id is not None:  # set with every descriptor (repository.finish_transaction)
            usage[key_id] = usage.get(key_id, 0) + int(count)
    return usage
