"""What the service itself costs per face-match call, the engine left out.

The real app in-process (SQLite in a temporary directory, images stored
encrypted as in production, one LFW pair of ~15 KB JPEGs) with an engine that
answers at once, so what is timed is HTTP parsing, base64, SQL, sealing,
signing, metrics and logs. Per round: ``--calls`` sequential calls; reported:
medians over ``--rounds`` rounds of wall time and of the process's CPU time
(all threads) per call. Compare two versions by running this alternately in
each (CPU time per call is the steadier figure on a shared machine).

    python -m bench.service_overhead [--rounds 7] [--calls 100] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from facematch.engine.types import FaceBox, FaceObservation, MatchResult
from facematch.service.app import create_app
from facematch.settings import Settings
from facematch.store import repository
from facematch.store.db import session_scope

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"
MODEL_ID = "bench-instant"


class InstantMatcher:
    """An engine that answers at once (the service's cost is what is measured)."""

    model_id = MODEL_ID

    def _result(self) -> MatchResult:
        face = FaceObservation(
            box_px=FaceBox(1, 2, 3, 4),
            detector_score=1.0,
            rotation_deg=0,
            image_size_px=(250, 250),
            embedding=np.zeros(128, np.float32),
            model_id=MODEL_ID,
        )
        return MatchResult(
            is_similar=True,
            confidence=0.9,
            distance=0.3,
            threshold=0.5,
            model_id=MODEL_ID,
            first=face,
            second=face,
        )

    def match(self, first: bytes | str, second: bytes | str, /) -> MatchResult:
        return self._result()

    def match_reference(
        self, image: bytes | str, reference_embedding: np.ndarray, reference_model_id: str, /
    ) -> MatchResult:
        return self._result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()
    images = args.lfw_root / "images" / "Aaron_Peirsol"

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            environment="development", data_dir=Path(data_dir), purge_interval_s=0, warm_up=False
        )
        app = create_app(settings, matcher=InstantMatcher())
        with TestClient(app) as http:
            with session_scope(app.state.session_factory) as session:
                org = repository.create_organisation(session, name="bench")
                user = repository.create_user(
                    session, organisation=org, username="bench", password="bench-pw"
                )
                bundle, key = repository.create_bundle(
                    session, organisation=org, token_trials=1_000_000, quota=1_000_000
                )
                application, _secret = repository.create_application(
                    session, organisation=org, bundle=bundle, name="bench"
                )
                token = repository.issue_token(
                    session, user=user, application=application, refresh_lifetime_s=3600
                ).access_token
            body = {
                "first_img": base64.b64encode(
                    (images / "Aaron_Peirsol_0001.jpg").read_bytes()
                ).decode(),
                "second_img": base64.b64encode(
                    (images / "Aaron_Peirsol_0002.jpg").read_bytes()
                ).decode(),
                "bundle_key": key,
            }
            headers = {"Authorization": f"Bearer {token}"}

            def call() -> None:
                response = http.post("/api/v1/face/match/", json=body, headers=headers)
                response.raise_for_status()

            for _ in range(20):  # warm-up: first connections, caches
                call()
            wall: list[float] = []
            cpu: list[float] = []
            for _ in range(args.rounds):
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                for _ in range(args.calls):
                    call()
                wall.append((time.perf_counter() - wall_start) * 1000 / args.calls)
                cpu.append((time.process_time() - cpu_start) * 1000 / args.calls)
    print(
        f"per call: wall {statistics.median(wall):6.2f} ms, CPU {statistics.median(cpu):6.2f} ms "
        f"(medians of {args.rounds} rounds of {args.calls}; CPU min {min(cpu):.2f}, "
        f"max {max(cpu):.2f})"
    )


if __name__ == "__main__":
    main()
