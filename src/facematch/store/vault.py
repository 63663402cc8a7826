"""Encryption at rest for stored images and bundle HMAC secrets.

A :class:`Vault` holds named 256-bit keys from configuration
(``FACEMATCH_IMAGE_KEYS="k2027:BASE64,k2026:BASE64"``). The first key seals all
new data; every listed key can open old data, so a rotation is: put a new key
first, keep the old ones listed until ``facematch admin rotate-keys`` has
re-sealed everything, then drop them.

A sealed blob is self-describing::

    0x01 ‖ len(key_id) (1 byte) ‖ key_id (ASCII) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)

with associated data ``b"facematch-vault-v1\\0" + key_id + b"\\0" + context``.
``context`` names what the blob is (e.g. ``image:<transaction id>:first``), so
a blob copied onto another row or purpose fails to open instead of decrypting.

This module belongs to the store; the engine never imports it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from facematch.settings import Settings

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
DEV_KEY_FILE = "image-keys"
"""File in ``data_dir`` holding the generated development key (mode 0600)."""

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_AAD_PREFIX = b"facematch-vault-v1\x00"
# Random 32-byte keys have ~30 distinct byte values; fewer than this means a
# placeholder such as all zeros or a repeated pattern, never real randomness.
_MIN_DISTINCT_BYTES = 12


class VaultError(Exception):
    """Root of the vault's errors."""


class VaultConfigError(VaultError):
    """The configured keys are missing, malformed or placeholders."""


class UnknownKeyError(VaultError):
    """A blob was sealed with a key that is no longer configured."""


class VaultIntegrityError(VaultError):
    """A blob is malformed, was altered, or belongs to another context."""


def new_key_spec(key_id: str | None = None) -> str:
    """A fresh ``key_id:base64`` entry for ``FACEMATCH_IMAGE_KEYS``."""
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    _check_key_id(key_id)
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise VaultConfigError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")


def parse_key_spec(spec: str, *, allow_placeholders: bool = False) -> dict[str, bytes]:
    """``"id1:b64,id2:b64"`` → ordered ``{id: key}``; the first entry is the primary."""
    keys: dict[str, bytes] = {}
    for raw_entry in spec.split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            raise VaultConfigError("each image key must be written 'key_id:base64'")
        key_id = key_id.strip()
        _check_key_id(key_id)
        if key_id in keys:
            raise VaultConfigError(f"image key id {key_id!r} is listed twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as exc:
            raise VaultConfigError(f"image key {key_id!r} is not valid base64") from exc
        if len(key) != KEY_BYTES:
            raise VaultConfigError(f"image key {key_id!r} is {len(key)} bytes, 32 required")
        if not allow_placeholders and len(set(key)) < _MIN_DISTINCT_BYTES:
            raise VaultConfigError(
                f"image key {key_id!r} looks like a placeholder, not random bytes; "
                "generate one with `facematch admin new-image-key`"
            )
        keys[key_id] = key
    if not keys:
        raise VaultConfigError("no image key configured")
    return keys


class Vault:
    """Seals and opens byte strings with the configured keys (thread-safe)."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise VaultConfigError("a vault needs at least one key")
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if len(key) != KEY_BYTES:
                raise VaultConfigError(f"image key {key_id!r} is not 32 bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.primary_key_id: str = next(iter(keys))

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Configured key ids, primary first."""
        return tuple(self._ciphers)

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt ``plaintext`` with the primary key, bound to ``context``."""
        key_id = self.primary_key_id
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[key_id].encrypt(nonce, plaintext, _aad(key_id, context))
        kid = key_id.encode("ascii")
        return bytes([FORMAT_VERSION, len(kid)]) + kid + nonce + ciphertext

    def open(self, blob: bytes, *, context: str) -> bytes:
        """Decrypt a sealed blob; the same ``context`` as at sealing is required."""
        key_id, nonce, ciphertext = _split(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(f"data was sealed with key {key_id!r}, which is not configured")
        try:
            return cipher.decrypt(nonce, ciphertext, _aad(key_id, context))
        except InvalidTag as exc:
            raise VaultIntegrityError("sealed data was altered or belongs elsewhere") from exc

    def needs_reseal(self, blob: bytes) -> bool:
        """True when ``blob`` was sealed with a key other than the primary one."""
        return key_id_of(blob) != self.primary_key_id

    def reseal(self, blob: bytes, *, context: str) -> bytes:
        """``blob`` re-encrypted under the primary key (unchanged if already there)."""
        if not self.needs_reseal(blob):
            return blob
        return self.seal(self.open(blob, context=context), context=context)

    def seal_text(self, text: str, *, context: str) -> bytes:
        return self.seal(text.encode("utf-8"), context=context)

    def open_text(self, blob: bytes, *, context: str) -> str:
        return self.open(blob, context=context).decode("utf-8")


def key_id_of(blob: bytes) -> str:
    """Id of the key a blob was sealed with (stored beside it for rotation queries)."""
    return _split(blob)[0]


def _split(blob: bytes) -> tuple[str, bytes, bytes]:
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        raise VaultIntegrityError("not a sealed blob of a known format version")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + 16:
        raise VaultIntegrityError("sealed blob is truncated")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise VaultIntegrityError("sealed blob has a malformed key id") from exc
    return key_id, blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


def _aad(key_id: str, context: str) -> bytes:
    return _AAD_PREFIX + key_id.encode("ascii") + b"\x00" + context.encode("utf-8")


def dev_key_path(data_dir: Path) -> Path:
    return data_dir / DEV_KEY_FILE


def _load_or_create_dev_key(path: Path) -> str:
    """The development key spec stored at ``path``, created (mode 0600) if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written to a private temporary file, then linked into place: the link
        # fails if another worker got there first, and nobody ever reads a
        # half-written key.
        fd, tmp_name = tempfile.mkstemp(prefix=".image-keys-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(new_key_spec("dev-" + datetime.now(UTC).strftime("%Y%m%d")) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp_name, path)
        finally:
            os.unlink(tmp_name)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise VaultConfigError(f"{path} is readable by other users (mode {mode:o}); chmod 600 it")
    return path.read_text(encoding="ascii").strip()


def vault_from_settings(settings: Settings) -> Vault:
    """The vault the process should use; refuses to run without real keys in production.

    Development without ``image_keys``: a key generated once and kept in
    ``data_dir/image-keys`` (mode 0600), so ``make run`` works with no setup and
    images stored in one run stay readable in the next.
    """
    development = settings.environment == "development"
    if settings.image_keys is not None and settings.image_keys.get_secret_value().strip():
        spec = settings.image_keys.get_secret_value()
    elif development:
        spec = _load_or_create_dev_key(dev_key_path(settings.data_dir))
    else:
        raise VaultConfigError(
            "FACEMATCH_IMAGE_KEYS is not set; generate a key with "
            "`facematch admin new-image-key` (or set FACEMATCH_ENVIRONMENT=development "
            "to use a local development key)"
        )
    return Vault(parse_key_spec(spec, allow_placeholders=development))


def vault_from_specs(specs: Iterable[str]) -> Vault:
    """A vault from several ``key_id:base64`` entries, first one primary (tests, tools)."""
    return Vault(parse_key_spec(",".join(specs)))
