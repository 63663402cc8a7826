"""Helpers for the service tests: provisioning clients, tokens, a scripted engine."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from facematch.store import repository
from facematch.store.db import session_scope
from facematch.testing.provision import Credentials as Credentials  # the tests import it here
from facematch.testing.provision import create_client
from facematch.testing.stub import StubMatcher as StubMatcher  # the tests import it from here
from facematch.testing.stub import script as script


def provision(
    client: TestClient,
    *,
    quota: int | None = None,
    token_trials: int = 3,
    token_lifetime_s: int = 600,
    services: tuple[str, ...] = ("face_match",),
) -> Credentials:
    """A new organisation with one user, bundle and OAuth application."""
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        return create_client(
            session,
            quota=quota,
            token_trials=token_trials,
            token_lifetime_s=token_lifetime_s,
            services=services,
            name="test app",
        )


def issue_token(client: TestClient, creds: Credentials) -> str:
    """An access token made directly in the store (skips the slow password check)."""
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        user = repository.get_user(session, username=creds.username)
        app = repository.get_application(session, client_id=creds.client_id)
        return repository.issue_token(
            session, user=user, application=app, refresh_lifetime_s=3600
        ).access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def png_b64(width: int = 200, height: int = 200, color: int = 128) -> str:
    """A plain grey PNG: a valid image with no face in it."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (color, color, color)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@contextmanager
def using_vault(app: Any, vault: Any) -> Iterator[None]:
    """Run the app on another key configuration (a restart with new keys), then back."""
    services = app.state.services
    original = app.state.vault
    parts = (services.face_match, services.transactions)

    def install(chosen: Any) -> None:
        app.state.vault = chosen
        for part in parts:
            part.vault = chosen

    install(vault)
    try:
        yield
    finally:
        install(original)
