"""A fuzz target on a running ``facematch serve``: credentials written into its
database, a token with practically unlimited trials, the organisation's RSA key
registered (so inquiry and fetch-images reach their real work) and one successful
face match to use as a reference. Shared by tests/service/test_fuzz_live.py and
bench/fuzz.py."""

from __future__ import annotations

import base64

import httpx
from sqlalchemy import Engine, select, update

from facematch.store.models import AccessToken, Bundle, Organisation
from facematch.store.security import digest_secret
from facematch.testing import fuzz_cases as fz
from facematch.testing.keys import client_private_key, public_pem
from facematch.testing.provision import Credentials, provision, token_from

TOKEN_LIFETIME_S = 3600  # the longest a bundle may give (docs/api.md): one campaign < 1 h


def prepare(database: Engine, database_url: str) -> Credentials:
    """Organisation, user, bundle, application; long-lived tokens; RSA key registered."""
    client = provision(database_url, quota=None, token_trials=10**9)
    with database.begin() as connection:
        connection.execute(
            update(Bundle)
            .where(Bundle.id == client.bundle_id)
            .values(token_lifetime_s=TOKEN_LIFETIME_S)
        )
        org_id = connection.scalar(
            select(Bundle.organisation_id).where(Bundle.id == client.bundle_id)
        )
        connection.execute(
            update(Organisation)
            .where(Organisation.id == org_id)
            .values(rsa_public_key_pem=public_pem(client_private_key()))
        )
    return client


def live_target(database: Engine, database_url: str, server_url: str, jpeg: bytes) -> fz.Target:
    """Everything a client of the running server holds, after one real match."""
    client = prepare(database, database_url)
    token = token_from(server_url, client)
    b64 = base64.b64encode(jpeg).decode("ascii")
    first = httpx.post(
        f"{server_url}/api/v1/face/match/",
        json={"first_img": b64, "second_img": b64, "bundle_key": client.bundle_key},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    first.raise_for_status()
    return fz.Target(
        token=token,
        bundle_key=client.bundle_key,
        client_id=client.client_id,
        client_secret=client.client_secret,
        username=client.username,
        password=client.password,
        transaction_id=first.json()["transaction_id"],
        faces=fz.reencoded(jpeg),
    )


def trials_left(database: Engine, token: str) -> int:
    with database.connect() as connection:
        return connection.execute(
            select(AccessToken.trials_remaining).where(
                AccessToken.token_hash == digest_secret(token)
            )
        ).scalar_one()
