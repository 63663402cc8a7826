"""What the Python SDK adds to a face-match call, against a plain HTTP post.

The real app and engine in-process (SQLite, one LFW pair, ~15 KB JPEGs), both
clients on the same transport, alternating rounds: ``raw`` posts a prebuilt JSON
body with a bearer token (what Valify's sample client does); ``sdk`` is
``Client.match(path, path)``: reading and base64-encoding both files, token
bookkeeping, typed answer, and the ``hmac`` check of every answer. Medians of
per-call times over ``--rounds`` rounds of ``--calls`` calls.

    python -m bench.sdk [--rounds 5] [--calls 10] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from facematch.service.app import create_app
from facematch.settings import Settings
from facematch.store import repository
from facematch.store.db import session_scope
from facematch.store.sealed import ensure_bundle_hmac_secret
from facematch_client import Client

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()
    first = args.lfw_root / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
    second = args.lfw_root / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(environment="development", data_dir=Path(data_dir), purge_interval_s=0)
        with TestClient(create_app(settings)) as http:
            app = http.app
            with session_scope(app.state.session_factory) as session:  # type: ignore[attr-defined]
                org = repository.create_organisation(session, name="bench")
                user = repository.create_user(
                    session, organisation=org, username="bench", password="bench-pw"
                )
                bundle, key = repository.create_bundle(
                    session, organisation=org, token_trials=100_000, store_images=False
                )
                application, client_secret = repository.create_application(
                    session, organisation=org, bundle=bundle, name="bench"
                )
                secret = ensure_bundle_hmac_secret(session, app.state.vault, bundle)  # type: ignore[attr-defined]
                token = repository.issue_token(
                    session, user=user, application=application, refresh_lifetime_s=3600
                ).access_token
                client_id = application.client_id
            body = {
                "first_img": base64.b64encode(first.read_bytes()).decode(),
                "second_img": base64.b64encode(second.read_bytes()).decode(),
                "bundle_key": key,
            }
            headers = {"Authorization": f"Bearer {token}"}
            sdk = Client(
                "http://testserver",
                username="bench",
                password="bench-pw",
                client_id=client_id,
                client_secret=client_secret,
                bundle_key=key,
                hmac_secret=secret,
                transport=http._transport,
            )

            def raw_call() -> None:
                response = http.post("/api/v1/face/match/", json=body, headers=headers)
                response.raise_for_status()

            def sdk_call() -> None:
                sdk.match(first, second)

            raw_call(), sdk_call()  # warm-up (and the SDK's token)
            per_call: dict[str, list[float]] = {"raw": [], "sdk": []}
            for _ in range(args.rounds):
                for name, call in (("raw", raw_call), ("sdk", sdk_call)):
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        call()
                    per_call[name].append((time.perf_counter() - start) * 1000 / args.calls)
            sdk.close()
    raw_ms, sdk_ms = statistics.median(per_call["raw"]), statistics.median(per_call["sdk"])
    print(f"raw httpx post : {raw_ms:7.1f} ms/call (median of {args.rounds} rounds)")
    print(f"SDK match      : {sdk_ms:7.1f} ms/call")
    print(f"ratio SDK/raw  : {sdk_ms / raw_ms:.3f}  (difference {sdk_ms - raw_ms:+.1f} ms)")


if __name__ == "__main__":
    main()
