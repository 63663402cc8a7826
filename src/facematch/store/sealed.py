"""Sealed (encrypted-at-rest) data of the store: transaction images, reference face
descriptors and bundle HMAC secrets.

Everything here goes through a :class:`~facematch.store.vault.Vault`; the
context strings bind each ciphertext to the row it belongs to, so ciphertexts
cannot be swapped between transactions, roles or bundles.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facematch.store.models import Bundle, Transaction, TransactionImage
from facematch.store.vault import Vault, key_id_of

IMAGE_ROLES = ("first", "second")
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


def store_transaction_images(
    session: Session, vault: Vault, *, transaction_id: str, images: Mapping[str, bytes]
) -> list[TransactionImage]:
    """Encrypt and add the images of a transaction (``{"first": bytes, ...}``) to the session."""
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


def reseal_all(session: Session, vault: Vault, *, batch_size: int = 200) -> int:
    """Re-encrypt every image, reference descriptor and HMAC secret not under the primary
    key; returns the count.

    Runs in batches so a large table never sits in memory at once; the caller
    commits (each batch is flushed).
    """
    count = 0
    while True:
        rows = session.scalars(
            select(TransactionImage)
            .where(TransactionImage.key_id != vault.primary_key_id)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            context = image_context(row.transaction_id, row.role)
            row.ciphertext = vault.reseal(row.ciphertext, context=context)
            row.key_id = key_id_of(row.ciphertext)
        session.flush()
        count += len(rows)
    count += _reseal_reference_embeddings(session, vault, batch_size=batch_size)
    for bundle in session.scalars(select(Bundle).where(Bundle.hmac_secret_ciphertext.is_not(None))):
        blob = bundle.hmac_secret_ciphertext
        if blob is not None and vault.needs_reseal(blob):
            bundle.hmac_secret_ciphertext = vault.reseal(blob, context=_hmac_context(bundle))
            count += 1
    session.flush()
    return count


def _reseal_reference_embeddings(session: Session, vault: Vault, *, batch_size: int) -> int:
    # By batches of the rows sealed under another key, in id order: only one batch
    # is ever in memory, and rows already under the primary key are never read.
    count = 0
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
            session.execute(
                update(Transaction)
                .where(Transaction.id == row.id)
                .values(reference_embedding=sealed, reference_key_id=key_id_of(sealed))
            )
        count += len(rows)
        last_id = rows[-1].id
    session.flush()
    return count


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
        usage[key_id] = usage.get(key_id, 0) + int(count)
    return usage
