"""A subset of the fuzz campaign through a real ``facematch serve`` (2 workers, SQLite):
real HTTP framing, real worker processes, so a crash in native code shows up as a
dropped connection and a restarted worker instead of killing the test run.

Properties as in test_fuzz_api.py, plus: no transport error (dropped connection),
the same worker processes at the end as at the start, and no worker restarted
(counted in the server log). The long run of the same cases is ``bench/fuzz.py``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from facematch.store import db
from facematch.testing import fuzz_cases as fz
from facematch.testing import fuzz_target
from facematch.testing.live import LiveServer
from tests.conftest import fresh_database, lfw_image
from tests.service.test_fuzz_api import FUZZ, scaled

pytestmark = [pytest.mark.slow, pytest.mark.lfw]


@dataclass
class Live:
    server: LiveServer
    http: httpx.Client
    database: Engine  # on the server's database
    target: fz.Target
    pids: list[int]

    def trials_left(self) -> int:
        return fuzz_target.trials_left(self.database, self.target.token)

    def check(self, case: fz.Case) -> None:
        before = self.trials_left()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in case.headers]
        try:
            response = self.http.request(case.method, case.path, headers=headers, content=case.body)
        except httpx.TransportError as exc:
            raise AssertionError(f"dropped connection ({exc!r})\ncase: {case.summary()}") from exc
        problems = fz.violations(
            case, response.status_code, response.content, before - self.trials_left()
        )
        assert not problems, (
            f"{problems}\nanswer {response.status_code}: {response.content[:300]!r}\n"
            f"case: {case.summary()}"
        )

    def assert_alive(self) -> None:
        assert self.http.get("/healthz").status_code == 200
        assert self.server.worker_pids() == self.pids, "a worker process was replaced"
        assert self.server.started_workers() == len(self.pids), "a worker restarted"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, lfw_root: Path) -> Iterator[Live]:
    with fresh_database("sqlite", tmp_path_factory) as url:
        data_dir = tmp_path_factory.mktemp("fuzz-live")
        engine = db.create_db_engine(url)
        db.migrate(engine)
        try:
            with LiveServer(
                database_url=url, data_dir=data_dir, workers=2, log_path=data_dir / "server.log"
            ) as server:
                jpeg = lfw_image(lfw_root, "Aaron_Peirsol", 1).read_bytes()
                target = fuzz_target.live_target(engine, url, server.url, jpeg)
                with httpx.Client(
                    base_url=server.url, timeout=120, limits=fz.ONE_CONNECTION_PER_CASE
                ) as http:
                    yield Live(server, http, engine, target, server.worker_pids())
        finally:
            engine.dispose()


def test_well_formed_cases_of_every_endpoint(live: Live) -> None:
    """Every endpoint, hostile fields, headers, methods, mutated images; valid JSON text."""
    images = fz.image_texts(live.target)
    cases = fz.any_case(live.target, images=images, surrogates=False, malformed=False)
    ran = []

    @settings(FUZZ, max_examples=scaled(200))
    @given(case=cases)
    def run(case: fz.Case) -> None:
        ran.append(case.kind)
        live.check(case)

    run()
    assert len(ran) >= scaled(180)
    live.assert_alive()


def test_malformed_json_and_surrogates(live: Live) -> None:
    """The same through real HTTP with malformed JSON and lone surrogates allowed
    (defect 2 of issue 10)."""

    @settings(FUZZ, max_examples=scaled(150))
    @given(case=st_hostile(live.target))
    def run(case: fz.Case) -> None:
        live.check(case)

    try:
        run()
    finally:
        live.assert_alive()


def st_hostile(target: fz.Target) -> st.SearchStrategy[fz.Case]:
    return st.one_of(
        fz.surrogate_cases(target),
        fz.match_cases(target),
        fz.transaction_cases(target),
        st.sampled_from(fz.MALFORMED_JSON_BODIES).map(
            lambda body: fz.Case(
                fz.MATCH_V1,
                "POST",
                fz.PATHS[fz.MATCH_V1][0],
                (("Content-Type", "application/json"),),
                body,
                "malformed-json",
            )
        ),
    )


def test_junk_methods_do_not_grow_metrics(live: Live) -> None:
    """Defect 4 of issue 10: after a few junk methods on a path, 200 more on it add no
    series to /metrics (only counters' digits change)."""

    def metrics_size() -> int:
        response = live.http.get("/metrics")
        assert response.status_code == 200  # the live server runs in development
        return len(response.content)

    path = fz.PATHS[fz.MATCH_V1][0]
    for index in range(20):
        live.http.request(f"WARMUP{index}", path)
    before = metrics_size()
    for index in range(200):
        live.http.request(f"JUNK{index}", path)
    assert metrics_size() - before < 500


EXTREME_SHAPES = [
    (70000, 64, "PNG"),
    (64, 70000, "PNG"),
    (65000, 64, "JPEG"),
    (64, 65000, "JPEG"),
    (16383, 64, "WEBP"),
    (64, 16383, "WEBP"),
    (40000, 100, "PNG"),
    (6000, 6000, "PNG"),
]


def test_extreme_image_shapes_are_refused_without_a_crash(live: Live) -> None:
    """Flat images of extreme shape (tiny files, huge arrays), in every accepted format:
    refused or matched, never a crash (defect 1 of issue 10). Last in the module: on
    code without the envelope it kills a worker."""
    face = base64.b64encode(live.target.faces[0]).decode("ascii")
    try:
        for width, height, fmt in EXTREME_SHAPES:
            image = base64.b64encode(fz.flat_image(width, height, fmt)).decode("ascii")
            for fields in (
                {"first_img": image, "second_img": face},
                {"first_img": face, "second_img": image},
            ):
                body = fz.encode_json(
                    {**fields, "bundle_key": live.target.bundle_key}, ascii_only=True
                )
                headers = (
                    ("Authorization", f"Bearer {live.target.token}"),
                    ("Content-Type", "application/json"),
                )
                path = fz.PATHS[fz.MATCH_V1][0]
                live.check(
                    fz.Case(fz.MATCH_V1, "POST", path, headers, body, f"{fmt} {width}x{height}")
                )
    finally:
        live.assert_alive()
