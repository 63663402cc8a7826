"""`facematch admin` commands for transaction data, run through click's test runner."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from facematch.cli import cli
from facematch.settings import get_settings
from facematch.store import db, repository
from facematch.store.models import Transaction, utcnow
from facematch.store.sealed import (
    bundle_hmac_secret,
    seal_reference_embedding,
    store_transaction_images,
)
from facematch.store.vault import new_key_spec, vault_from_specs
from facematch.testing.keys import client_private_key, public_pem


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    key = new_key_spec("k1")
    values = {
        "FACEMATCH_DATA_DIR": str(tmp_path),
        "FACEMATCH_IMAGE_KEYS": key,
        "FACEMATCH_ENVIRONMENT": "production",
    }
    monkeypatch.delenv("FACEMATCH_DATABASE_URL", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


def _seed(tmp_path: Path, image_key: str, *, age_days: float) -> tuple[int, str]:
    """An organisation with a bundle and one transaction with two stored images."""
    engine = db.create_db_engine(f"sqlite:///{tmp_path / db.SQLITE_FILENAME}")
    db.migrate(engine)
    with db.session_scope(db.create_session_factory(engine)) as session:
        org = repository.create_organisation(session, name="acme")
        user = repository.create_user(session, organisation=org, username="alice", password="pw")
        bundle, _ = repository.create_bundle(session, organisation=org, retention_days=30)
        app, _ = repository.create_application(session, organisation=org, bundle=bundle, name="a")
        token = repository.issue_token(session, user=user, application=app, refresh_lifetime_s=60)
        transaction = Transaction(
            organisation_id=org.id,
            user_id=user.id,
            bundle_id=bundle.id,
            token_id=token.row.id,
            service="face_match",
            outcome="success",
            created_at=utcnow() - timedelta(days=age_days),
        )
        session.add(transaction)
        session.flush()
        vault = vault_from_specs([image_key])
        transaction.reference_embedding = seal_reference_embedding(
            vault, transaction.id, b"\x01" * 512
        )
        store_transaction_images(
            session,
            vault,
            transaction_id=transaction.id,
            images={"first": b"\xff\xd8\xff1", "second": b"\xff\xd8\xff2"},
        )
        bundle_id, transaction_id = bundle.id, transaction.id
    engine.dispose()
    return bundle_id, transaction_id


def _sql(tmp_path: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / db.SQLITE_FILENAME) as connection:
        return connection.execute(query, args).fetchall()


def test_register_key_stores_the_pem_and_prints_the_fingerprint(
    env: dict[str, str], tmp_path: Path
) -> None:
    _seed(tmp_path, env["FACEMATCH_IMAGE_KEYS"], age_days=0)
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(public_pem(client_private_key()))
    result = CliRunner().invoke(cli, ["admin", "register-key", "-o", "acme", str(pem_file)])
    assert result.exit_code == 0, result.output
    assert "registered RSA-4096 key for 'acme'" in result.output
    assert _sql(tmp_path, "SELECT rsa_public_key_pem FROM organisations") == [
        (public_pem(client_private_key()),)
    ]
    again = CliRunner().invoke(cli, ["admin", "register-key", "-o", "acme", str(pem_file)])
    assert "replaced" in again.output


def test_register_key_refuses_bad_keys_and_unknown_organisations(
    env: dict[str, str], tmp_path: Path
) -> None:
    _seed(tmp_path, env["FACEMATCH_IMAGE_KEYS"], age_days=0)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result = CliRunner().invoke(cli, ["admin", "register-key", "-o", "acme", str(bad)])
    assert result.exit_code != 0
    assert "not a PEM-encoded public key" in result.output
    good = tmp_path / "public.pem"
    good.write_text(public_pem(client_private_key()))
    result = CliRunner().invoke(cli, ["admin", "register-key", "-o", "nobody", str(good)])
    assert result.exit_code != 0
    assert "nobody" in result.output


def test_purge_command_deletes_old_images_only_when_not_dry(
    env: dict[str, str], tmp_path: Path
) -> None:
    _, transaction_id = _seed(tmp_path, env["FACEMATCH_IMAGE_KEYS"], age_days=40)
    dry = CliRunner().invoke(cli, ["admin", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would purge 1 transaction(s), 2 image(s)" in dry.output
    assert _sql(tmp_path, "SELECT COUNT(*) FROM transaction_images") == [(2,)]

    result = CliRunner().invoke(cli, ["admin", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1 transaction(s), 2 image(s)" in result.output
    assert _sql(tmp_path, "SELECT COUNT(*) FROM transaction_images") == [(0,)]
    rows = _sql(
        tmp_path,
        "SELECT outcome, reference_embedding, images_purged_at FROM transactions WHERE id = ?",
        transaction_id,
    )
    assert rows[0][0] == "success"
    assert rows[0][1] is None
    assert rows[0][2] is not None


def test_purge_command_closes_stale_pending_transactions(
    env: dict[str, str], tmp_path: Path
) -> None:
    _, stale = _seed(tmp_path, env["FACEMATCH_IMAGE_KEYS"], age_days=1)
    # A call that died mid-way a day ago (30 s deadline + 300 s grace by default).
    with sqlite3.connect(tmp_path / db.SQLITE_FILENAME) as connection:
        connection.execute("UPDATE transactions SET outcome = 'pending' WHERE id = ?", (stale,))
    dry = CliRunner().invoke(cli, ["admin", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would close 1 stale pending transaction(s) as abandoned" in dry.output
    assert _sql(tmp_path, "SELECT outcome FROM transactions") == [("pending",)]

    result = CliRunner().invoke(cli, ["admin", "purge"])
    assert result.exit_code == 0, result.output
    assert "closed 1 stale pending transaction(s) as abandoned" in result.output
    assert _sql(tmp_path, "SELECT outcome FROM transactions") == [("abandoned",)]


def test_rotation_commands(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = env["FACEMATCH_IMAGE_KEYS"]
    bundle_id, _ = _seed(tmp_path, old, age_days=0)
    secret = CliRunner().invoke(cli, ["admin", "hmac-secret", "--bundle-id", str(bundle_id)])
    assert secret.exit_code == 0, secret.output
    assert len(secret.output.strip()) >= 40

    created = CliRunner().invoke(cli, ["admin", "new-image-key", "--key-id", "k2"])
    assert created.exit_code == 0
    new = created.output.strip()
    assert new.startswith("k2:")
    monkeypatch.setenv("FACEMATCH_IMAGE_KEYS", f"{new},{old}")
    get_settings.cache_clear()
    rotated = CliRunner().invoke(cli, ["admin", "rotate-keys"])
    assert rotated.exit_code == 0, rotated.output
    # 2 images + the reference descriptor + the HMAC secret
    assert "re-encrypted 4 item(s) under key 'k2'" in rotated.output
    assert "k2: 3 image(s) and reference descriptor(s)" in rotated.output
    assert _sql(tmp_path, "SELECT DISTINCT key_id FROM transaction_images") == [("k2",)]

    # The old key can go: the HMAC secret is still the same.
    monkeypatch.setenv("FACEMATCH_IMAGE_KEYS", new)
    get_settings.cache_clear()
    again = CliRunner().invoke(cli, ["admin", "hmac-secret", "--bundle-id", str(bundle_id)])
    assert again.output == secret.output
    engine = db.create_db_engine(f"sqlite:///{tmp_path / db.SQLITE_FILENAME}")
    with db.session_scope(db.create_session_factory(engine)) as session:
        bundle = repository.get_bundle(session, bundle_id=bundle_id)
        assert bundle_hmac_secret(vault_from_specs([new]), bundle) == secret.output.strip()
    engine.dispose()


def test_commands_refuse_to_run_without_image_keys_in_production(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACEMATCH_IMAGE_KEYS")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["admin", "rotate-keys"])
    assert result.exit_code != 0
    assert "FACEMATCH_IMAGE_KEYS is not set" in result.output
