"""Encryption at rest: sealing, contexts, rotation, configuration."""

from __future__ import annotations

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from facematch.settings import Settings
from facematch.store.vault import (
    DEV_KEY_FILE,
    UnknownKeyError,
    Vault,
    VaultConfigError,
    VaultIntegrityError,
    key_id_of,
    new_key_spec,
    parse_key_spec,
    vault_from_settings,
    vault_from_specs,
)

JPEG_LIKE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def test_seal_and_open_round_trip_without_plaintext_in_blob() -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    blob = vault.seal(JPEG_LIKE, context="image:tx1:first")
    assert key_id_of(blob) == "k1"
    assert JPEG_LIKE[:64] not in blob
    assert vault.open(blob, context="image:tx1:first") == JPEG_LIKE
    assert vault.seal(JPEG_LIKE, context="image:tx1:first") != blob  # fresh nonce


def test_blob_is_bound_to_its_context() -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    blob = vault.seal(JPEG_LIKE, context="image:tx1:first")
    with pytest.raises(VaultIntegrityError):
        vault.open(blob, context="image:tx2:first")
    with pytest.raises(VaultIntegrityError):
        vault.open(blob, context="image:tx1:second")


def test_tampering_is_detected() -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    blob = bytearray(vault.seal(b"abc", context="c"))
    blob[-1] ^= 0x80
    with pytest.raises(VaultIntegrityError):
        vault.open(bytes(blob), context="c")
    with pytest.raises(VaultIntegrityError):
        vault.open(b"\x02garbage" + bytes(40), context="c")
    with pytest.raises(VaultIntegrityError):
        vault.open(bytes(blob[:10]), context="c")


def test_rotation_keeps_old_data_readable_and_reseals() -> None:
    old_spec, new_spec = new_key_spec("k2026"), new_key_spec("k2027")
    before = vault_from_specs([old_spec])
    old_blob = before.seal(JPEG_LIKE, context="image:tx1:first")

    after = vault_from_specs([new_spec, old_spec])  # new key first = primary
    assert after.primary_key_id == "k2027"
    assert after.open(old_blob, context="image:tx1:first") == JPEG_LIKE
    assert key_id_of(after.seal(b"x", context="c")) == "k2027"
    assert after.needs_reseal(old_blob)

    resealed = after.reseal(old_blob, context="image:tx1:first")
    assert key_id_of(resealed) == "k2027"
    assert not after.needs_reseal(resealed)
    assert after.reseal(resealed, context="image:tx1:first") is resealed

    only_new = vault_from_specs([new_spec])
    assert only_new.open(resealed, context="image:tx1:first") == JPEG_LIKE
    with pytest.raises(UnknownKeyError, match="k2026"):
        only_new.open(old_blob, context="image:tx1:first")


def test_text_secrets_round_trip() -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    blob = vault.seal_text("hmac-secret-é", context="bundle-hmac:7")
    assert vault.open_text(blob, context="bundle-hmac:7") == "hmac-secret-é"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no image key"),
        ("nokeyid", "key_id:base64"),
        ("bad id:" + base64.b64encode(bytes(range(32))).decode(), "key id"),
        ("k1:not-base64!", "base64"),
        ("k1:" + base64.b64encode(bytes(range(16))).decode(), "32 required"),
        ("k1:" + base64.b64encode(bytes(32)).decode(), "placeholder"),
        ("k1:" + base64.b64encode(b"ab" * 16).decode(), "placeholder"),
    ],
)
def test_bad_key_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(VaultConfigError, match=message):
        parse_key_spec(spec)


def test_duplicate_key_ids_are_refused() -> None:
    spec = new_key_spec("k1")
    with pytest.raises(VaultConfigError, match="twice"):
        parse_key_spec(f"{spec},{spec}")


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    settings = Settings(environment="production", image_keys=None, data_dir=tmp_path)
    with pytest.raises(VaultConfigError, match="FACEMATCH_IMAGE_KEYS"):
        vault_from_settings(settings)
    placeholder = "k1:" + base64.b64encode(bytes(32)).decode()
    with pytest.raises(VaultConfigError, match="placeholder"):
        vault_from_settings(Settings(environment="production", image_keys=placeholder))
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_production_uses_configured_keys(tmp_path: Path) -> None:
    spec = f"{new_key_spec('new')},{new_key_spec('old')}"
    vault = vault_from_settings(
        Settings(environment="production", image_keys=spec, data_dir=tmp_path)
    )
    assert vault.key_ids == ("new", "old")
    assert spec not in repr(Settings(image_keys=spec))  # SecretStr keeps it out of logs


def test_development_creates_a_private_persistent_key(tmp_path: Path) -> None:
    settings = Settings(environment="development", image_keys=None, data_dir=tmp_path / "data")
    first = vault_from_settings(settings)
    key_file = tmp_path / "data" / DEV_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    blob = first.seal(b"image", context="c")
    second = vault_from_settings(settings)  # next `make run`: same key, data still readable
    assert second.key_ids == first.key_ids
    assert second.open(blob, context="c") == b"image"


def test_development_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = Settings(environment="development", image_keys=None, data_dir=tmp_path)
    vault_from_settings(settings)
    (tmp_path / DEV_KEY_FILE).chmod(0o644)
    with pytest.raises(VaultConfigError, match="chmod 600"):
        vault_from_settings(settings)


def test_vault_needs_a_key() -> None:
    with pytest.raises(VaultConfigError):
        Vault({})


def test_workers_starting_together_agree_on_one_development_key(tmp_path: Path) -> None:
    settings = Settings(environment="development", image_keys=None, data_dir=tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        vaults = list(pool.map(lambda _: vault_from_settings(settings), range(16)))
    blob = vaults[0].seal(b"image", context="c")
    for vault in vaults:
        assert vault.open(blob, context="c") == b"image"
    assert [p.name for p in tmp_path.iterdir()] == [DEV_KEY_FILE]  # no temporary file left
