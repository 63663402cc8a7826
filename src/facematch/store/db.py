"""Database engine, sessions and schema migration.

SQLite file in ``settings.data_dir`` by default; any SQLAlchemy URL (PostgreSQL
with psycopg in production) through ``FACEMATCH_DATABASE_URL``. The schema is
created and upgraded by the Alembic migrations in ``store/migrations``, run
programmatically (no alembic.ini needed at run time).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from facematch.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_FILENAME = "facematch.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 16
SQLITE_POOL_OVERFLOW = 48
# The database holds password hashes, token digests and sealed biometric data:
# only the service's own user may read it (SQLite gives its -wal and -shm files
# the mode of the database file).
SQLITE_FILE_MODE = 0o600
SQLITE_DIR_MODE = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class StoreError(Exception):
    """The store cannot be opened or migrated (configuration or server fault)."""


def database_url(settings: Settings) -> str:
    """The configured URL, or the SQLite file in the data directory."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{Path(settings.data_dir).expanduser().resolve() / SQLITE_FILENAME}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes concurrent
    # writers (several worker threads or processes) wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the database file owner-only before SQLite opens it, and tighten the
    mode of files an older version left readable by others."""
    path.parent.mkdir(mode=SQLITE_DIR_MODE, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SQLITE_FILE_MODE))
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_SIDE_FILES)):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            continue
        # Only our own files: chmod on another user's file fails, and opening it is
        # that user's decision.
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            candidate.chmod(SQLITE_FILE_MODE)


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets its pragmas, its parent folder and an
    owner-only (0600) database file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_file(Path(parsed.database))
        # Connections are cheap to keep and costly to open (pragmas): keep enough for
        # every request a worker holds in flight instead of opening overflow ones.
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_OVERFLOW,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a request stay usable after commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from alembic import command

    try:
        command.upgrade(_alembic_config(engine), "head")
    except Exception as exc:
        raise StoreError(f"cannot migrate the database schema: {exc}") from exc


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return MigrationContext.configure(connection).get_current_revision()


def ping(session: Session) -> None:
    """A trivial query: the database answers (readiness probes)."""
    session.execute(text("SELECT 1"))
