"""Fixtures for the HTTP service tests: databases, one loaded engine, apps, clients."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facematch.service.app import create_app
from facematch.settings import Settings
from facematch.store.vault import new_key_spec
from tests.conftest import lfw_image
from tests.service.support import StubMatcher


@pytest.fixture(scope="session")
def matcher():  # type: ignore[no-untyped-def]
    """The real face engine, loaded once per test session."""
    from facematch.engine.matcher import FaceMatcher

    return FaceMatcher.from_settings(Settings())


# One image key per test session; production mode, so the app refuses to start without it.
TEST_IMAGE_KEYS = new_key_spec("test-key")
# Production mode keeps /metrics closed unless a scrape token is configured.
TEST_METRICS_TOKEN = "test-metrics-scrape-token"


def service_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "warm_up": False,
        "image_keys": TEST_IMAGE_KEYS,
        "purge_interval_s": 0,  # tests run the purge explicitly
        "metrics_token": TEST_METRICS_TOKEN,
        # The shared apps see every test's failed logins from one address; the
        # throttle has its own app and limits in test_token_throttle.py.
        "token_throttle_client_failures": 0,
        "token_throttle_username_failures": 0,
        **overrides,
    }
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def client(
    database_url: str, matcher: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The real app with the real engine, on each database."""
    app = create_app(
        service_settings(database_url, tmp_path_factory.mktemp("data")),
        matcher=matcher,  # type: ignore[arg-type]
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def stub_client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The real app with a scripted engine (no model loaded), to produce every engine
    error on demand."""
    stub = StubMatcher()
    app = create_app(
        service_settings(
            database_url,
            tmp_path_factory.mktemp("data"),
            max_inflight_matches=2,
            max_body_bytes=1_000_000,
            request_timeout_s=2.0,
        ),
        matcher=stub,  # type: ignore[arg-type]
    )
    app.state.stub = stub
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def b64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="session")
def faces(lfw_root: Path) -> dict[str, str]:
    """Base64 images from LFW: two of one person, one of another."""
    return {
        "same_a": b64_file(lfw_image(lfw_root, "Aaron_Peirsol", 1)),
        "same_b": b64_file(lfw_image(lfw_root, "Aaron_Peirsol", 2)),
        "same_c": b64_file(lfw_image(lfw_root, "Aaron_Peirsol", 3)),
        "other": b64_file(lfw_image(lfw_root, "Tony_Blair", 6)),
    }
