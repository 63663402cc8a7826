"""Fixtures shared by every test package."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facematch.store import security
from facematch.testing.lfw import lfw_image as lfw_image  # the tests import it from here
from facematch.testing.lfw import lfw_root_path

# --- password hashing cost ------------------------------------------------------

# The production scrypt cost (128 MiB, ~0.4 s) on every user a test creates would
# add minutes; tests that are about hashing are marked ``real_password_cost``.
CHEAP_PASSWORD_COST = security.ScryptCost(n=2**10, r=8, p=1)


@functools.cache
def _cheap_dummy_hash() -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "PASSWORD_COST", CHEAP_PASSWORD_COST)
        return security.hash_password("facematch-timing-equaliser")


@pytest.fixture(autouse=True)
def cheap_password_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap scrypt cost (and a dummy hash made with it), unless the test is marked."""
    if request.node.get_closest_marker("real_password_cost") is not None:
        return
    monkeypatch.setattr(security, "PASSWORD_COST", CHEAP_PASSWORD_COST)
    monkeypatch.setattr(security, "DUMMY_PASSWORD_HASH", _cheap_dummy_hash())


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """The LFW View 1 folder; tests that need it skip, saying where they looked."""
    root = lfw_root_path()
    if not (root / "images").is_dir():
        pytest.skip(f"LFW View 1 not found at {root} (set FACEMATCH_LFW_ROOT)")
    return root


# --- databases (service and store tests) ---------------------------------------

POSTGRES_ENV = "FACEMATCH_TEST_POSTGRES_URL"


def _postgres_schema_url(base_url: str, schema: str) -> str:
    # search_path puts every table (and alembic_version) in this session's own schema,
    # so parallel runs on the same database never see each other's rows.
    return (
        make_url(base_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@contextmanager
def fresh_database(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file, or a private PostgreSQL schema
    (dropped afterwards). Skips, saying why, when PostgreSQL is not configured."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'facematch.sqlite3'}"
        return
    base_url = os.environ.get(POSTGRES_ENV)
    if not base_url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL variant not run")
    schema = f"fm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _postgres_schema_url(base_url, schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database shared by the session's tests of one backend (SQLite, PostgreSQL)."""
    with fresh_database(request.param, tmp_path_factory) as url:
        yield url
