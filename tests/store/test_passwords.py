"""Password hashing: OWASP's scrypt cost, no import-time scrypt, transparent rehash."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from facematch.store import db, repository, security
from facematch.store.security import ScryptCost

OWASP_COST = ScryptCost(n=2**17, r=8, p=1)  # OWASP Password Storage Cheat Sheet
OLD_COST = ScryptCost(n=2**14, r=8, p=1)  # what facematch used before


def _hash_with(password: str, cost: ScryptCost) -> str:
    """A stored hash as an older version wrote it (same format, other parameters)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, dklen=32)
    return f"scrypt${cost.n}${cost.r}${cost.p}${security._b64(salt)}${security._b64(key)}"


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_db_engine(database_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return db.create_session_factory(engine)


def _user_with_hash(factory: sessionmaker[Session], stored: str) -> str:
    suffix = uuid.uuid4().hex[:10]
    with db.session_scope(factory) as session:
        org = repository.create_organisation(session, name=f"org-{suffix}")
        user = repository.create_user(
            session, organisation=org, username=f"u-{suffix}", password="unused"
        )
        user.password_hash = stored
        return user.username


@pytest.mark.real_password_cost
def test_new_hashes_use_owasps_scrypt_cost() -> None:
    assert security.PASSWORD_COST == OWASP_COST
    stored = security.hash_password("correct horse")
    assert stored.startswith("scrypt$131072$8$1$")
    assert security.verify_password("correct horse", stored)
    assert not security.verify_password("correct hors", stored)
    assert not security.needs_rehash(stored)


@pytest.mark.real_password_cost
def test_dummy_hash_is_a_precomputed_hash_at_todays_cost() -> None:
    # An unknown username must cost what a real hash costs: same parameters.
    cost, salt, key = security._parse(security.DUMMY_PASSWORD_HASH)
    assert cost == security.PASSWORD_COST
    assert (len(salt), len(key)) == (16, 32)
    assert security.verify_password("facematch-timing-equaliser", security.DUMMY_PASSWORD_HASH)


def test_importing_the_store_runs_no_scrypt() -> None:
    code = (
        "import hashlib\n"
        "calls = []\n"
        "real = hashlib.scrypt\n"
        "hashlib.scrypt = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
        "import facematch.store.repository, facematch.service.api.routes.token\n"
        "print(len(calls))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "0"


def test_hash_with_old_parameters_verifies_and_needs_rehash() -> None:
    stored = _hash_with("pw", OLD_COST)
    assert security.verify_password("pw", stored)
    assert security.needs_rehash(stored)
    assert security.needs_rehash("not a hash")


def test_stored_hash_beyond_the_memory_bound_is_refused_without_computing() -> None:
    # n = 2^24 would need 16 GiB: refused on its parameters, no allocation attempted.
    stored = _hash_with("pw", OLD_COST).replace("$16384$", f"${2**24}$", 1)
    assert not security.verify_password("pw", stored)


@pytest.mark.real_password_cost
def test_login_rehashes_an_old_hash_at_todays_cost(factory: sessionmaker[Session]) -> None:
    username = _user_with_hash(factory, _hash_with("s3cret", OLD_COST))
    with db.session_scope(factory) as session:
        assert repository.authenticate_user(session, username=username, password="wrong") is None
    with factory() as session:
        assert repository.get_user(session, username=username).password_hash.startswith(
            "scrypt$16384$"
        )  # a failed login changes nothing
    with db.session_scope(factory) as session:
        user = repository.authenticate_user(session, username=username, password="s3cret")
        assert user is not None
    with factory() as session:
        stored = repository.get_user(session, username=username).password_hash
    assert stored.startswith("scrypt$131072$8$1$")
    assert security.verify_password("s3cret", stored)
    assert not security.needs_rehash(stored)
