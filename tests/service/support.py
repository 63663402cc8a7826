"""Helpers for the service tests: provisioning clients, tokens, a scripted engine."""

from __future__ import annotations

import base64
import io
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from facematch.engine import errors as engine_errors
from facematch.engine.images import Base64Image
from facematch.engine.types import FaceBox, FaceObservation, MatchResult
from facematch.store import repository
from facematch.store.db import session_scope


@dataclass(frozen=True)
class Credentials:
    """Everything a client of the service is given, plus ids for assertions."""

    username: str
    password: str
    client_id: str
    client_secret: str
    bundle_key: str
    organisation_id: int
    bundle_id: int
    application_id: int
    user_id: int


def provision(
    client: TestClient,
    *,
    quota: int | None = None,
    token_trials: int = 3,
    token_lifetime_s: int = 600,
    services: tuple[str, ...] = ("face_match",),
) -> Credentials:
    """A new organisation with one user, bundle and OAuth application."""
    suffix = uuid.uuid4().hex[:10]
    password = f"pw-{suffix}"
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        org = repository.create_organisation(session, name=f"org-{suffix}")
        user = repository.create_user(
            session, organisation=org, username=f"user-{suffix}", password=password
        )
        bundle, key = repository.create_bundle(
            session,
            organisation=org,
            enabled_services=services,
            quota=quota,
            token_trials=token_trials,
            token_lifetime_s=token_lifetime_s,
        )
        app, secret = repository.create_application(
            session, organisation=org, bundle=bundle, name="test app"
        )
        return Credentials(
            username=user.username,
            password=password,
            client_id=app.client_id,
            client_secret=secret,
            bundle_key=key,
            organisation_id=org.id,
            bundle_id=bundle.id,
            application_id=app.id,
            user_id=user.id,
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


def script(instruction: str) -> str:
    """A 'first_img' that tells :class:`StubMatcher` what to do."""
    return base64.b64encode(instruction.encode()).decode("ascii")


@dataclass
class StubMatcher:
    """A scripted stand-in for FaceMatcher, for errors a real photo cannot produce
    reliably (server faults, every engine error class, a busy engine).

    ``first_img`` decodes to ``raise:<EngineErrorClass>``, ``raise:RuntimeError``,
    ``block`` (wait for :attr:`release`) or anything else (a match).
    """

    model_id: str
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def _run(self, first: bytes | Base64Image) -> MatchResult:
        # Like FaceMatcher: bytes are the image itself (what the service passes: it
        # decodes each image once), Base64Image its base64 text.
        raw = first if isinstance(first, bytes) else base64.b64decode(first.text)
        instruction = raw.decode(errors="replace")
        if instruction.startswith("raise:"):
            name = instruction.removeprefix("raise:")
            if name == "RuntimeError":
                raise RuntimeError("scripted server bug")
            error_class: Any = getattr(engine_errors, name)
            raise error_class(f"scripted {name}", image="first")
        if instruction == "block":
            self.entered.release()
            self.release.wait(timeout=30)
        observation = FaceObservation(
            box_px=FaceBox(1, 2, 3, 4),
            detector_score=1.0,
            rotation_deg=0,
            image_size_px=(10, 10),
            embedding=np.zeros(128, np.float32),
            model_id=self.model_id,
        )
        return MatchResult(
            is_similar=True,
            confidence=0.9,
            distance=0.3,
            threshold=0.5,
            model_id=self.model_id,
            first=observation,
            second=observation,
        )

    def match(self, first: bytes | Base64Image, second: bytes | Base64Image) -> MatchResult:
        return self._run(first)

    def match_reference(
        self, image: bytes | Base64Image, reference_embedding: np.ndarray, reference_model_id: str
    ) -> MatchResult:
        return self._run(image)


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
