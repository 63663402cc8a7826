"""Hostile image shapes and decode bombs through a real `facematch serve`.

The 13 KB flat PNGs once aborted the worker inside dlib (every request in flight
on it lost) and the 116 KB 6000×6000 PNG cost seconds of CPU. Through a real
server, so that a crash shows as a dead worker instead of taking pytest down:
each must get its catalogue answer, and the worker that answered must still be
the same process afterwards.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from facematch.service.errors import CATALOGUE
from facematch.testing.live import LiveServer
from facematch.testing.provision import provision, token_from
from tests.service.support import png_b64

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MATCH = "/api/v1/face/match/"


def _flat_png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_hostile_shapes_get_catalogue_answers_and_the_worker_lives(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'envelope.sqlite3'}"
    client = provision(database_url, quota=None, token_trials=100)
    cases = [
        (_flat_png(70000, 64), "image_bad_shape"),  # wide: straight into dlib's pyramid
        (_flat_png(64, 70000), "image_bad_shape"),  # tall: through the rotation retry
        (_flat_png(6000, 6000), "image_too_many_pixels"),  # PNG decode cost
    ]
    with LiveServer(
        database_url=database_url,
        data_dir=tmp_path,
        workers=1,
        log_path=tmp_path / "server.log",
    ) as server:
        workers = server.worker_pids()
        token = token_from(server.url, client)
        with httpx.Client(timeout=120) as http:
            for image, name in cases:
                try:
                    response = http.post(
                        server.url + MATCH,
                        json={
                            "first_img": image,
                            "second_img": png_b64(),
                            "bundle_key": client.bundle_key,
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError as exc:
                    pytest.fail(f"{name}: connection lost ({exc!r}):\n{server.log()[-3000:]}")
                entry = CATALOGUE[name]
                assert response.status_code == entry.status, response.text
                body = response.json()
                assert (body["error_code"], body["message"]) == (entry.code, entry.en)
                assert body["field"] == "first_img"
            assert http.get(server.url + "/readyz").status_code == 200
        assert server.worker_pids() == workers, server.log()[-3000:]
