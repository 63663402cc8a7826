"""What images at rest, signed responses and encrypted answers add to a call.

Medians of ``--repeats`` runs after one warm-up, for three image sizes: a real
LFW JPEG (250×250, ~15 KB), 500 KiB (a typical phone photo) and 5 MiB (the
largest the service accepts by default); the synthetic ones are random bytes,
which compress like a JPEG. Baseline, measured in the
same process on the same bytes: the base64 decoding every face-match call
already does once; the ratio says how many such decodes the extra work costs.

- ``store``: decode both images + AES-256-GCM seal + INSERT + COMMIT (SQLite file);
- ``sign``: canonical JSON + HMAC-SHA512 of a face-match response;
- ``inquire``: envelope of an inquiry answer (fresh AES key, RSA-4096 OAEP wrap);
- ``fetch``: decrypt both stored images + envelope of the fetch-images answer.

    python -m bench.transactions [--repeats 15] [--lfw-root DIR]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from facematch.engine.images import decode_base64
from facematch.protocol.envelope import encrypt_json_for_client
from facematch.service.application.transactions import fetch_images
from facematch.service.signing import canonical_json, hmac_hex
from facematch.store import db, repository
from facematch.store.models import Transaction
from facematch.store.sealed import seal_transaction_images
from facematch.store.vault import new_key_spec, vault_from_specs

DEFAULT_LFW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lfw-view1"
MAX_BYTES = 5 * 1024 * 1024


def _median_ms(function: Callable[[], object], repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--lfw-root", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()

    lfw = (args.lfw_root / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").read_bytes()
    phone = b"\xff\xd8\xff\xe0" + os.urandom(500 * 1024 - 4)
    big = b"\xff\xd8\xff\xe0" + os.urandom(MAX_BYTES - 4)
    vault = vault_from_specs([new_key_spec("bench")])
    public_key = rsa.generate_private_key(public_exponent=65537, key_size=4096).public_key()

    with tempfile.TemporaryDirectory() as tmp:
        engine = db.create_db_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        db.migrate(engine)
        factory = db.create_session_factory(engine)
        with db.session_scope(factory) as session:
            org = repository.create_organisation(session, name="bench")
            user = repository.create_user(session, organisation=org, username="b", password="b")
            bundle, _ = repository.create_bundle(session, organisation=org)
            app, _ = repository.create_application(
                session, organisation=org, bundle=bundle, name="b"
            )
            token = repository.issue_token(
                session, user=user, application=app, refresh_lifetime_s=1
            )
            ids = (org.id, user.id, bundle.id, token.row.id)

        print(f"median of {args.repeats} runs, ms (ratio = cost / base64 decode of both images)")
        for label, image in (
            ("LFW 250x250 JPEG", lfw),
            ("500 KiB image", phone),
            ("5 MiB image", big),
        ):
            text = base64.b64encode(image).decode("ascii")
            baseline = _median_ms(
                lambda text=text: (
                    decode_base64(text, max_bytes=MAX_BYTES),
                    decode_base64(text, max_bytes=MAX_BYTES),
                ),
                args.repeats,
            )
            last: list[str] = []

            def store(text: str = text, last: list[str] = last) -> None:
                with factory() as session:
                    transaction = Transaction(
                        organisation_id=ids[0],
                        user_id=ids[1],
                        bundle_id=ids[2],
                        token_id=ids[3],
                        service="face_match",
                    )
                    session.add(transaction)
                    session.flush()
                    # What a face-match call does with the images a bundle keeps.
                    decoded = {
                        role: decode_base64(text, max_bytes=MAX_BYTES)
                        for role in ("first", "second")
                    }
                    session.add_all(
                        seal_transaction_images(
                            vault, transaction_id=transaction.id, images=decoded
                        )
                    )
                    session.commit()
                    last[:] = [transaction.id]

            stored = _median_ms(store, args.repeats)

            def fetch(last: list[str] = last) -> None:
                with factory() as session:
                    answer = fetch_images(
                        session, vault, organisation_id=ids[0], transaction_id=last[0]
                    )
                    encrypt_json_for_client(answer, public_key)

            fetched = _median_ms(fetch, args.repeats)
            print(
                f"{label:18s} base64 decode x2 {baseline:8.2f}   store {stored:8.2f} "
                f"({stored / baseline:5.1f}x)   fetch {fetched:8.2f} ({fetched / baseline:5.1f}x)"
            )
        engine.dispose()

    response = {
        "result": {"confidence": 0.9731, "is_similar": True},
        "transaction_id": "0b6f1c1e-5d0c-4a53-9d51-3e1b2f0d7c11",
        "trials_remaining": 2,
    }
    sign = _median_ms(lambda: hmac_hex(canonical_json(response), "secret"), args.repeats * 20)
    inquire = _median_ms(
        lambda: encrypt_json_for_client({"transactions": [response] * 3}, public_key),
        args.repeats * 5,
    )
    print(f"sign a face-match response {sign:8.3f}   inquiry envelope (RSA-4096) {inquire:8.3f}")


if __name__ == "__main__":
    main()
