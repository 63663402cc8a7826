"""One real `facematch serve` (development mode, SQLite) shared by the client tests:
the SDK in a fresh virtual environment, the Postman collection under newman, and the
demo and documentation pages in a real Chromium."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from facematch.testing.keys import client_private_key, public_pem
from facematch.testing.live import FACEMATCH_CLI, LiveServer
from tests.conftest import lfw_image

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveClient:
    """A running server and everything its first client was given."""

    url: str
    username: str
    password: str
    client_id: str
    client_secret: str
    bundle_key: str
    bundle_id: int
    hmac_secret: str
    private_key_pem: str
    env: dict[str, str]  # the server's environment: `facematch admin` on its database


def admin(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [FACEMATCH_CLI, "admin", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> Iterator[LiveClient]:
    """`facematch serve` on a free port, with one organisation bootstrapped through the
    admin CLI (its RSA key registered, its bundle's HMAC secret read back)."""
    data_dir = tmp_path_factory.mktemp("live")
    database_url = f"sqlite:///{data_dir / 'facematch.sqlite3'}"
    with LiveServer(
        database_url=database_url,
        data_dir=data_dir,
        workers=1,
        log_path=data_dir / "server.log",
    ) as server:
        env = {**server.env}
        values = json.loads(
            admin(
                env,
                "bootstrap",
                "--organisation",
                "Clients",
                "--username",
                "sdk",
                "--token-trials",
                "3",
                "--json",
            )
        )
        admin(
            env,
            "register-key",
            "--organisation",
            "Clients",
            "-",
            stdin=public_pem(client_private_key()),
        )
        secret = admin(env, "hmac-secret", "--bundle-id", str(values["bundle_id"])).strip()
        pem = (
            client_private_key()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode("ascii")
        )
        yield LiveClient(
            url=server.url,
            username=values["username"],
            password=values["password"],
            client_id=values["client_id"],
            client_secret=values["client_secret"],
            bundle_key=values["bundle_key"],
            bundle_id=int(values["bundle_id"]),
            hmac_secret=secret,
            private_key_pem=pem,
            env=env,
        )


@pytest.fixture(scope="session")
def photos(lfw_root: Path) -> dict[str, Path]:
    """Two photos of one person, one of another, and one with no face in it."""
    return {
        "same_a": lfw_image(lfw_root, "Aaron_Peirsol", 1),
        "same_b": lfw_image(lfw_root, "Aaron_Peirsol", 2),
        "other": lfw_image(lfw_root, "Tony_Blair", 6),
    }


def no_face_photo(directory: Path) -> Path:
    """A plain grey JPEG: a valid image with no face in it."""
    from PIL import Image

    path = directory / "no-face.jpg"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(path, format="JPEG")
    return path


def environ_without_venv() -> dict[str, str]:
    """The environment minus this virtual environment, for a fresh interpreter."""
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env.pop("PYTHONPATH", None)
    return env
