"""`facematch admin ...` through click's runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner, Result

from facematch.cli import cli
from facematch.store import db, repository
from facematch.store.security import digest_secret, verify_password


@pytest.fixture
def run(database_url: str):  # type: ignore[no-untyped-def]
    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["admin", "--database-url", database_url, *args], input=input
        )

    return invoke


@pytest.fixture
def store(database_url: str):  # type: ignore[no-untyped-def]
    engine = db.create_db_engine(database_url)
    db.migrate(engine)
    yield db.create_session_factory(engine)
    engine.dispose()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_everything_step_by_step(run, store) -> None:  # type: ignore[no-untyped-def]
    org, user = _name("org"), _name("user")
    assert run("create-org", org).exit_code == 0
    created = run("create-user", "-o", org, "-u", user, input="s3cret\ns3cret\n")
    assert created.exit_code == 0, created.output
    bundle = run("create-bundle", "-o", org, "--quota", "5", "--token-trials", "4", "--json")
    assert bundle.exit_code == 0, bundle.output
    bundle_values = json.loads(bundle.output)
    app = run("create-app", "-o", org, "--bundle-id", str(bundle_values["bundle_id"]), "--json")
    assert app.exit_code == 0, app.output
    app_values = json.loads(app.output)

    with store() as session:
        stored_user = repository.get_user(session, username=user)
        assert verify_password("s3cret", stored_user.password_hash)
        stored_bundle = repository.get_bundle(session, bundle_id=bundle_values["bundle_id"])
        assert stored_bundle.key_hash == digest_secret(bundle_values["bundle_key"])
        assert (stored_bundle.quota_remaining, stored_bundle.token_trials) == (5, 4)
        assert repository.authenticate_application(
            session, client_id=app_values["client_id"], client_secret=app_values["client_secret"]
        )


def test_listings_never_show_secrets(run) -> None:  # type: ignore[no-untyped-def]
    org = _name("org")
    boot = json.loads(run("bootstrap", "-o", org, "-u", _name("user"), "--json").output)
    outputs = [run("list", kind, "-o", org).output for kind in ("orgs", "users", "apps", "bundles")]
    joined = "\n".join(outputs)
    assert org in joined
    assert boot["client_id"] in joined
    assert boot["bundle_key"][:8] in joined  # the display prefix only
    for secret in (boot["client_secret"], boot["bundle_key"], boot["password"]):
        assert secret not in joined


def test_recharge_rotate_and_revoke(run, store) -> None:  # type: ignore[no-untyped-def]
    org, user = _name("org"), _name("user")
    boot = json.loads(run("bootstrap", "-o", org, "-u", user, "--quota", "1", "--json").output)
    bundle_id = str(boot["bundle_id"])

    assert "quota 3" in run("recharge", "--bundle-id", bundle_id, "--add", "2").output
    assert "quota 10" in run("recharge", "--bundle-id", bundle_id, "--set", "10").output
    assert "unlimited" in run("recharge", "--bundle-id", bundle_id, "--unlimited").output
    both = run("recharge", "--bundle-id", bundle_id, "--add", "1", "--set", "1")
    assert both.exit_code == 2

    rotated = json.loads(run("rotate-bundle-key", "--bundle-id", bundle_id, "--json").output)
    assert rotated["bundle_key"] != boot["bundle_key"]
    with store() as session:
        assert repository.find_bundle_by_key(session, key=boot["bundle_key"]) is None
        assert repository.find_bundle_by_key(session, key=rotated["bundle_key"]) is not None
        user_row = repository.get_user(session, username=user)
        app_row = repository.get_application(session, client_id=boot["client_id"])
        for _ in range(2):
            repository.issue_token(
                session, user=user_row, application=app_row, refresh_lifetime_s=60
            )
        session.commit()

    assert "2 token(s) revoked" in run("revoke-tokens", "-u", user).output
    assert "0 token(s) revoked" in run("revoke-tokens", "-o", org).output


def test_errors_go_to_stderr_with_status_1(run) -> None:  # type: ignore[no-untyped-def]
    org = _name("org")
    assert run("create-org", org).exit_code == 0
    duplicate = run("create-org", org)
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.stderr
    missing = run("create-user", "-o", _name("nobody"), "-u", "x", "--password", "p")
    assert missing.exit_code == 1
    assert "no organisation" in missing.stderr
    unknown_service = run("create-bundle", "-o", org, "--services", "face_match,telepathy")
    assert unknown_service.exit_code == 1
    assert "telepathy" in unknown_service.stderr
    assert run("revoke-tokens").exit_code == 2


def test_options_read_environment_variables(database_url: str) -> None:
    org = _name("org")
    result = CliRunner().invoke(
        cli,
        ["admin", "bootstrap", "--json"],
        env={
            "FACEMATCH_DATABASE_URL": database_url,
            "FACEMATCH_ADMIN_ORGANISATION": org,
            "FACEMATCH_ADMIN_USERNAME": _name("user"),
            "FACEMATCH_ADMIN_PASSWORD": "from-env",
        },
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["organisation"] == org
    assert json.loads(result.output)["password"] == "from-env"


def test_create_bundle_makes_its_hmac_secret_when_the_keys_are_here(
    run, store, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from facematch.store.vault import new_key_spec

    org = _name("org")
    assert run("create-org", org).exit_code == 0
    monkeypatch.setenv("FACEMATCH_ENVIRONMENT", "production")
    monkeypatch.delenv("FACEMATCH_IMAGE_KEYS", raising=False)
    keyless = run("create-bundle", "-o", org, "--json")
    assert keyless.exit_code == 0, keyless.output
    monkeypatch.setenv("FACEMATCH_IMAGE_KEYS", new_key_spec("k1"))
    keyed = run("create-bundle", "-o", org, "--json")
    assert keyed.exit_code == 0, keyed.output

    with store() as session:
        without = repository.get_bundle(session, bundle_id=json.loads(keyless.output)["bundle_id"])
        with_keys = repository.get_bundle(session, bundle_id=json.loads(keyed.output)["bundle_id"])
        # Without the image keys the secret waits for the first match; with them it
        # is made, sealed, with the bundle.
        assert without.hmac_secret_ciphertext is None
        assert with_keys.hmac_secret_ciphertext
