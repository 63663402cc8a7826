"""Encrypted images and HMAC secrets in the database, key rotation, and the retention purge.

Runs on SQLite always and on PostgreSQL when FACEMATCH_TEST_POSTGRES_URL names
a server (a throwaway database is created and dropped for this module). The
database is checked with plain SQL, not through the ORM, so "deleted" means
the bytes are gone from the table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from facematch.store import db, repository
from facematch.store.models import Bundle, Transaction, utcnow
from facematch.store.retention import purge_expired
from facematch.store.sealed import (
    bundle_hmac_secret,
    ensure_bundle_hmac_secret,
    key_usage,
    load_transaction_images,
    new_hmac_secret,
    open_reference_embedding,
    reseal_all,
    seal_bundle_hmac_secret,
    seal_reference_embedding,
    store_transaction_images,
)
from facematch.store.vault import UnknownKeyError, Vault, new_key_spec, vault_from_specs

FIRST = b"\xff\xd8\xff\xe0" + os.urandom(3000)  # JPEG-like
SECOND = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)  # PNG-like


def _postgres_engine() -> Iterator[Engine]:
    url = os.environ.get("FACEMATCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("FACEMATCH_TEST_POSTGRES_URL is not set (PostgreSQL tests need a server)")
    name = f"facematch_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = db.create_db_engine(make_url(url).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    yield from _migrated_engine(request.param, tmp_path_factory.mktemp("sealed"))


def _migrated_engine(backend: str, directory: Path) -> Iterator[Engine]:
    """A migrated database: a SQLite file in ``directory``, or a PostgreSQL database
    of its own (dropped afterwards)."""
    if backend == "sqlite":
        engine = db.create_db_engine(f"sqlite:///{directory / 'db.sqlite3'}")
        db.migrate(engine)
        yield engine
        engine.dispose()
    else:
        for engine in _postgres_engine():
            db.migrate(engine)
            yield engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    factory = db.create_session_factory(engine)
    with factory() as session:
        yield session
        session.rollback()


# Key of the reference descriptors the helper below stores; vaults that re-encrypt
# everything (reseal_all) must hold it too.
FIXTURE_SPEC = new_key_spec("fixture")
DESCRIPTOR = np.arange(128, dtype=np.float32).tobytes()


def _transaction(
    session: Session,
    *,
    retention_days: int = 30,
    age_days: float = 0,
    descriptor_vault: Vault | None = None,
) -> Transaction:
    organisation = repository.create_organisation(session, name=f"org-{uuid.uuid4().hex[:8]}")
    user = repository.create_user(
        session, organisation=organisation, username=f"u-{uuid.uuid4().hex[:8]}", password="pw"
    )
    bundle, _key = repository.create_bundle(
        session, organisation=organisation, retention_days=retention_days
    )
    application, _secret = repository.create_application(
        session, organisation=organisation, bundle=bundle, name="app"
    )
    issued = repository.issue_token(
        session, user=user, application=application, refresh_lifetime_s=60
    )
    transaction = Transaction(
        organisation_id=organisation.id,
        user_id=user.id,
        bundle_id=bundle.id,
        token_id=issued.row.id,
        service="face_match",
        outcome="success",
        is_similar=True,
        confidence=0.97,
        first_box={"top": 1, "right": 2, "bottom": 3, "left": 4},
        reference_model_id="dlib-resnet-v1",
        created_at=utcnow() - timedelta(days=age_days),
    )
    session.add(transaction)
    session.flush()
    vault = descriptor_vault or vault_from_specs([FIXTURE_SPEC])
    transaction.reference_embedding = seal_reference_embedding(vault, transaction.id, DESCRIPTOR)
    session.flush()
    return transaction


def test_images_are_stored_encrypted_and_read_back(session: Session) -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    transaction = _transaction(session)
    store_transaction_images(
        session, vault, transaction_id=transaction.id, images={"first": FIRST, "second": SECOND}
    )
    session.flush()
    rows = session.execute(
        text(
            "SELECT role, key_id, content_type, ciphertext FROM transaction_images "
            "WHERE transaction_id = :t ORDER BY role"
        ),
        {"t": transaction.id},
    ).all()
    assert [(r.role, r.key_id, r.content_type) for r in rows] == [
        ("first", "k1", "image/jpeg"),
        ("second", "k1", "image/png"),
    ]
    for row, clear in zip(rows, (FIRST, SECOND), strict=True):
        assert clear[8:200] not in bytes(row.ciphertext)  # no clear bytes in the database
    images = load_transaction_images(session, vault, transaction_id=transaction.id)
    assert [(i.role, i.data) for i in images] == [("first", FIRST), ("second", SECOND)]


def test_rotation_keeps_images_readable_then_reseal_moves_them(session: Session) -> None:
    old_spec, new_spec = new_key_spec("old"), new_key_spec("new")
    transaction = _transaction(session, descriptor_vault=vault_from_specs([old_spec]))
    store_transaction_images(
        session,
        vault_from_specs([old_spec]),
        transaction_id=transaction.id,
        images={"first": FIRST},
    )
    session.flush()
    rotated = vault_from_specs([new_spec, old_spec, FIXTURE_SPEC])
    images = load_transaction_images(session, rotated, transaction_id=transaction.id)
    assert images[0].data == FIRST
    assert key_usage(session).get("old", 0) == 2  # the image and the reference descriptor

    assert reseal_all(session, rotated) >= 2
    assert "old" not in key_usage(session)
    only_new = vault_from_specs([new_spec])
    assert (
        load_transaction_images(session, only_new, transaction_id=transaction.id)[0].data == FIRST
    )
    session.refresh(transaction)
    assert transaction.reference_embedding is not None
    assert (
        open_reference_embedding(only_new, transaction.id, transaction.reference_embedding)
        == DESCRIPTOR
    )
    with pytest.raises(UnknownKeyError):
        load_transaction_images(
            session, vault_from_specs([old_spec]), transaction_id=transaction.id
        )


def test_bundle_hmac_secret_is_sealed_and_survives_key_rotation(session: Session) -> None:
    old_spec, new_spec = new_key_spec("old"), new_key_spec("new")
    transaction = _transaction(session)
    bundle = session.get(Bundle, transaction.bundle_id)
    assert bundle is not None
    secret = new_hmac_secret()
    seal_bundle_hmac_secret(vault_from_specs([old_spec]), bundle, secret)
    session.flush()
    stored = session.execute(
        text("SELECT hmac_secret_ciphertext FROM bundles WHERE id = :b"), {"b": bundle.id}
    ).scalar_one()
    assert secret.encode() not in bytes(stored)
    rotated = vault_from_specs([new_spec, old_spec, FIXTURE_SPEC])
    assert bundle_hmac_secret(rotated, bundle) == secret
    reseal_all(session, rotated)
    assert bundle_hmac_secret(vault_from_specs([new_spec]), bundle) == secret


def test_ensure_creates_one_secret_and_keeps_it(session: Session) -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    bundle = session.get(Bundle, _transaction(session).bundle_id)
    assert bundle is not None
    assert bundle.hmac_secret_ciphertext is None
    first = ensure_bundle_hmac_secret(session, vault, bundle)
    assert len(first) >= 40
    assert ensure_bundle_hmac_secret(session, vault, bundle) == first


def test_a_bundle_made_with_the_vault_has_its_secret_from_the_start(session: Session) -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    organisation = repository.create_organisation(session, name=f"org-{uuid.uuid4().hex[:8]}")
    bundle, _key = repository.create_bundle(session, organisation=organisation, vault=vault)
    assert bundle.hmac_secret_ciphertext is not None
    secret = bundle_hmac_secret(vault, bundle)
    assert len(secret) >= 40
    # ensure finds it and writes nothing new.
    assert ensure_bundle_hmac_secret(session, vault, bundle) == secret


def test_purge_deletes_image_bytes_and_keeps_the_audit_record(session: Session) -> None:
    vault = vault_from_specs([new_key_spec("k1")])
    old = _transaction(session, retention_days=30, age_days=31)
    young = _transaction(session, retention_days=30, age_days=29)
    short = _transaction(session, retention_days=1, age_days=2)
    for transaction in (old, young, short):
        store_transaction_images(
            session, vault, transaction_id=transaction.id, images={"first": FIRST, "second": SECOND}
        )
    session.flush()

    dry = purge_expired(session, dry_run=True)
    assert (dry.transactions, dry.images) == (2, 4)
    assert _image_count(session, old.id) == 2

    report = purge_expired(session)
    assert report.transactions == dry.transactions
    assert report.images == dry.images
    for purged in (old, short):
        assert _image_count(session, purged.id) == 0
        row = session.execute(
            text(
                "SELECT outcome, is_similar, confidence, first_box, reference_embedding, "
                "images_purged_at FROM transactions WHERE id = :t"
            ),
            {"t": purged.id},
        ).one()
        assert row.outcome == "success"
        assert row.is_similar
        assert row.confidence == pytest.approx(0.97)
        assert row.first_box is not None  # audit metadata kept
        assert row.reference_embedding is None  # biometric descriptor gone
        assert row.images_purged_at is not None
    assert _image_count(session, young.id) == 2
    assert (
        session.execute(
            text("SELECT reference_embedding FROM transactions WHERE id = :t"), {"t": young.id}
        ).scalar_one()
        is not None
    )
    # Nothing left to do: a second purge touches nothing.
    assert purge_expired(session).transactions == 0


def _image_count(session: Session, transaction_id: str) -> int:
    return session.execute(
        text("SELECT COUNT(*) FROM transaction_images WHERE transaction_id = :t"),
        {"t": transaction_id},
    ).scalar_one()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of this test's own, for tests that move the schema up and down."""
    yield from _migrated_engine(request.param, tmp_path)


def test_migration_0002_fills_reference_key_ids_from_the_sealed_descriptors(
    own_engine: Engine,
) -> None:
    from alembic import command

    factory = db.create_session_factory(own_engine)
    with factory() as session:
        old = _transaction(session, descriptor_vault=vault_from_specs([new_key_spec("k-old")]))
        new = _transaction(session, descriptor_vault=vault_from_specs([new_key_spec("k-new")]))
        plain = _transaction(session)
        plain.reference_embedding = None
        session.commit()
        ids = {old.id: "k-old", new.id: "k-new", plain.id: None}

    config = db._alembic_config(own_engine)
    command.downgrade(config, "0001")  # as a database made before the column existed
    with own_engine.connect() as connection:
        columns = connection.execute(text("SELECT * FROM transactions")).keys()
    assert "reference_key_id" not in columns
    db.migrate(own_engine)

    assert db.schema_revision(own_engine) == "0003"
    with own_engine.connect() as connection:
        rows = connection.execute(text("SELECT id, reference_key_id FROM transactions"))
        found = dict(rows.all())
    assert found == ids
    with factory() as session:
        assert key_usage(session) == {"k-old": 1, "k-new": 1}


def test_rotate_keys_commits_per_batch_and_a_killed_run_resumes(own_engine: Engine) -> None:
    old_spec, new_spec = new_key_spec("old"), new_key_spec("new")
    old_vault = vault_from_specs([old_spec])
    factory = db.create_session_factory(own_engine)
    with factory() as session:
        ids = []
        for _ in range(6):
            transaction = _transaction(session, descriptor_vault=old_vault)
            store_transaction_images(
                session,
                old_vault,
                transaction_id=transaction.id,
                images={"first": FIRST, "second": SECOND},
            )
            ids.append(transaction.id)
        session.commit()
    rotated = vault_from_specs([new_spec, old_spec])

    def another_writer_goes_through(_count: int) -> None:
        # Between two batches nothing is held: another connection updates a row the
        # run has just re-encrypted, without waiting for a lock (SQLite: no busy
        # wait; PostgreSQL: NOWAIT).
        with own_engine.connect() as connection:
            if own_engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA busy_timeout = 0")
                lock = ""
            else:
                lock = " FOR UPDATE NOWAIT"
            image_id = connection.execute(
                text(f"SELECT id FROM transaction_images WHERE key_id = 'new' LIMIT 1{lock}")
            ).scalar_one()
            connection.execute(
                text("UPDATE transaction_images SET content_type = content_type WHERE id = :i"),
                {"i": image_id},
            )
            connection.commit()

    # A run killed in the middle of its third batch of images: that batch rolls back.
    calls = 0
    real_reseal = rotated.reseal

    def reseal_then_die(blob: bytes, *, context: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt("killed")
        return real_reseal(blob, context=context)

    batches: list[int] = []
    with factory() as session:
        rotated.reseal = reseal_then_die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            reseal_all(
                session,
                rotated,
                image_batch_size=2,
                on_batch=lambda count: (batches.append(count), another_writer_goes_through(count)),
            )
        session.rollback()
        rotated.reseal = real_reseal  # type: ignore[method-assign]
    assert batches == [2, 4]

    # Every row is readable under a key still configured, old or new.
    with factory() as session:
        usage = key_usage(session)
        assert usage == {"new": 4, "old": 8 + 6}  # 8 images, 6 descriptors left
        for transaction_id in ids:
            images = load_transaction_images(session, rotated, transaction_id=transaction_id)
            assert [i.data for i in images] == [FIRST, SECOND]
            row = session.get(Transaction, transaction_id)
            assert row is not None
            assert row.reference_embedding is not None
            assert open_reference_embedding(rotated, row.id, row.reference_embedding) == DESCRIPTOR

    # Running it again finishes the job; the old key can then go.
    with factory() as session:
        assert reseal_all(session, rotated, image_batch_size=2) == 8 + 6
        assert key_usage(session) == {"new": 12 + 6}
        only_new = vault_from_specs([new_spec])
        for transaction_id in ids:
            images = load_transaction_images(session, only_new, transaction_id=transaction_id)
            assert [i.data for i in images] == [FIRST, SECOND]
            row = session.get(Transaction, transaction_id)
            assert row is not None
            assert row.reference_embedding is not None
            assert open_reference_embedding(only_new, row.id, row.reference_embedding) == DESCRIPTOR


def test_migration_0003_clears_what_the_retention_race_left_on_purged_rows(
    own_engine: Engine,
) -> None:
    from alembic import command

    command.downgrade(db._alembic_config(own_engine), "0002")
    vault = vault_from_specs([new_key_spec("k1")])
    factory = db.create_session_factory(own_engine)
    with factory() as session:
        leaked, kept = _transaction(session), _transaction(session)
        for transaction in (leaked, kept):
            store_transaction_images(
                session, vault, transaction_id=transaction.id, images={"first": FIRST}
            )
        # Purged, yet holding a descriptor and an image: what an in-flight call could leave.
        leaked.images_purged_at = utcnow()
        session.commit()
        leaked_id, kept_id = leaked.id, kept.id

    db.migrate(own_engine)

    assert db.schema_revision(own_engine) == "0003"
    with factory() as session:
        assert _image_count(session, leaked_id) == 0
        assert _image_count(session, kept_id) == 1
        rows = dict(
            session.execute(
                text(
                    "SELECT id, reference_key_id FROM transactions "
                    "WHERE reference_embedding IS NOT NULL"
                )
            ).all()
        )
    assert rows == {kept_id: "fixture"}
