"""The store: real migrations, atomic counters, UTC datetimes, hashed secrets."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from facematch.store import db, repository
from facematch.store.models import AccessToken, Base, Bundle, utcnow
from facematch.store.security import (
    digest_secret,
    hash_password,
    new_bundle_key,
    secret_matches,
    verify_password,
)

TABLES = {
    "organisations",
    "users",
    "bundles",
    "applications",
    "access_tokens",
    "transactions",
    "transaction_images",
}


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.create_session_factory(engine)


def _org_with_token(
    factory: sessionmaker[Session], *, trials: int = 3, quota: int | None = None
) -> tuple[int, int]:
    """(token id, bundle id) of a fresh organisation."""
    suffix = new_bundle_key()[:10]
    with db.session_scope(factory) as session:
        org = repository.create_organisation(session, name=f"org-{suffix}")
        user = repository.create_user(
            session, organisation=org, username=f"u-{suffix}", password="pw"
        )
        bundle, _ = repository.create_bundle(
            session, organisation=org, token_trials=trials, quota=quota
        )
        app, _ = repository.create_application(session, organisation=org, bundle=bundle, name="a")
        issued = repository.issue_token(session, user=user, application=app, refresh_lifetime_s=60)
        return issued.row.id, bundle.id


def test_migrations_create_the_schema_the_models_describe(engine: Engine) -> None:
    assert db.schema_revision(engine) == "0003"
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], diff


def test_migrate_is_idempotent(engine: Engine) -> None:
    db.migrate(engine)
    assert db.schema_revision(engine) == "0003"


def test_sqlite_pragmas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'nested' / 'x.sqlite3'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def test_default_database_is_sqlite_in_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facematch.settings import Settings

    url = db.database_url(Settings(data_dir=tmp_path, database_url=None))
    assert url == f"sqlite:///{tmp_path.resolve() / 'facematch.sqlite3'}"


def test_datetimes_round_trip_as_utc(factory: sessionmaker[Session]) -> None:
    token_id, _ = _org_with_token(factory)
    with factory() as session:
        token = session.get(AccessToken, token_id)
        assert token is not None
        assert token.expires_at.tzinfo is not None
        assert token.expires_at.utcoffset() == timedelta(0)
        assert timedelta(seconds=590) < token.expires_at - utcnow() <= timedelta(seconds=600)


def test_consume_trial_stops_at_zero_and_at_expiry(factory: sessionmaker[Session]) -> None:
    token_id, _ = _org_with_token(factory, trials=2)
    with db.session_scope(factory) as session:
        assert repository.consume_trial(session, token_id=token_id) == 1
        assert repository.consume_trial(session, token_id=token_id) == 0
        assert repository.consume_trial(session, token_id=token_id) is None
    token_id, _ = _org_with_token(factory)
    with db.session_scope(factory) as session:
        later = datetime.now(UTC) + timedelta(seconds=601)
        assert repository.consume_trial(session, token_id=token_id, now=later) is None


def test_concurrent_trials_are_exact(factory: sessionmaker[Session]) -> None:
    token_id, _ = _org_with_token(factory, trials=3)
    results: list[int | None] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def take() -> None:
        start.wait()
        with db.session_scope(factory) as session:
            remaining = repository.consume_trial(session, token_id=token_id)
        with lock:
            results.append(remaining)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r for r in results if r is not None) == [0, 1, 2]
    assert results.count(None) == 9


def test_quota_counts_down_and_unlimited_stays_unlimited(
    factory: sessionmaker[Session],
) -> None:
    _, limited = _org_with_token(factory, quota=1)
    _, unlimited = _org_with_token(factory, quota=None)
    with db.session_scope(factory) as session:
        assert repository.consume_quota(session, bundle_id=limited) is True
        assert repository.consume_quota(session, bundle_id=limited) is False
        for _ in range(3):
            assert repository.consume_quota(session, bundle_id=unlimited) is True
    with factory() as session:
        assert session.get(Bundle, limited).quota_remaining == 0  # type: ignore[union-attr]
        assert session.get(Bundle, unlimited).quota_remaining is None  # type: ignore[union-attr]


def test_refresh_token_is_redeemed_once(factory: sessionmaker[Session]) -> None:
    suffix = new_bundle_key()[:10]
    with db.session_scope(factory) as session:
        org = repository.create_organisation(session, name=f"org-{suffix}")
        user = repository.create_user(
            session, organisation=org, username=f"u-{suffix}", password="pw"
        )
        bundle, _ = repository.create_bundle(session, organisation=org)
        app, _ = repository.create_application(session, organisation=org, bundle=bundle, name="a")
        issued = repository.issue_token(session, user=user, application=app, refresh_lifetime_s=60)
    with db.session_scope(factory) as session:
        app = repository.get_application(session, client_id=app.client_id)
        first = repository.redeem_refresh_token(
            session, refresh_token=issued.refresh_token, application=app
        )
        second = repository.redeem_refresh_token(
            session, refresh_token=issued.refresh_token, application=app
        )
    assert first is not None
    assert second is None


def test_secrets_are_stored_as_digests(factory: sessionmaker[Session]) -> None:
    suffix = new_bundle_key()[:10]
    with db.session_scope(factory) as session:
        org = repository.create_organisation(session, name=f"org-{suffix}")
        user = repository.create_user(
            session, organisation=org, username=f"u-{suffix}", password="correct horse"
        )
        bundle, key = repository.create_bundle(session, organisation=org)
        app, secret = repository.create_application(
            session, organisation=org, bundle=bundle, name="a"
        )
        assert user.password_hash.startswith("scrypt$")
        assert "correct horse" not in user.password_hash
        assert bundle.key_hash == digest_secret(key) != key
        assert app.client_secret_hash == digest_secret(secret)
    with factory() as session:
        assert repository.authenticate_user(
            session, username=f"u-{suffix}", password="correct horse"
        )
        assert (
            repository.authenticate_user(session, username=f"u-{suffix}", password="wrong") is None
        )
        assert repository.authenticate_user(session, username="nobody", password="x") is None
        assert session.scalar(select(Bundle).where(Bundle.key_hash == key)) is None


def test_password_hashes_are_salted_and_verified() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first != second
    assert verify_password("pw", first)
    assert not verify_password("pW", first)
    assert not verify_password("pw", "not-a-hash")
    assert secret_matches("abc", digest_secret("abc"))
    assert not secret_matches("abd", digest_secret("abc"))


def test_sqlite_files_are_private_to_the_owner(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The usual umask would give SQLite's own files 0644: readable by every local user.
    previous = os.umask(0o022)
    try:
        path = tmp_path / "data" / "facematch.sqlite3"
        engine = db.create_db_engine(f"sqlite:///{path}")
        with engine.begin() as connection:  # a write in WAL mode creates -wal and -shm
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
            for file in files:
                assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
        engine.dispose()
    finally:
        os.umask(previous)


def test_existing_world_readable_sqlite_file_is_tightened(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "facematch.sqlite3"
    path.touch()
    path.chmod(0o644)
    db.create_db_engine(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
