"""Do face-match calls on one bundle still serialize on its quota?

Face-match calls with two 5 MiB images each, all on ONE bundle, through the real
app (in-process HTTP client, the app's thread pool) on PostgreSQL, from 1 client
and then from ``--clients`` concurrent clients. Baseline, measured in the same
process: the throughput of the single client. If the bundle's quota lock were
held while a call stores its images (decode, seal, INSERT of ~10 MB), the
concurrent clients would queue on it and the ratio would stay near 1.0.

The face engine is replaced by a constant answer: what is measured is the store
path (token, quota, pending row, images, outcome, signing), not face matching.
The images are random bytes behind a JPEG signature, as in bench/transactions.py.
Configurations alternate (1, N, 1, N, ...) so that load from other jobs on the
machine falls on both; the median of ``--repeats`` runs of each is reported.
On a machine shared with other jobs the throughput ratio moves with their load,
so the bench also samples PostgreSQL for the app's sessions blocked on a lock:
the share of the time some call waits on one, which does not depend on speed.

    python -m bench.bundle_concurrency [--url postgresql+psycopg://...] [--clients 4]
        [--calls 12] [--repeats 3] [--quota limited|unlimited]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from facematch.service.app import create_app
from facematch.settings import Settings
from facematch.store import repository
from facematch.store.db import session_scope
from facematch.store.vault import new_key_spec
from facematch.testing.provision import create_client
from facematch.testing.stub import StubMatcher

IMAGE_BYTES = 5 * 1024 * 1024
SAMPLE_EVERY_S = 0.005


def _schema_url(base_url: str, schema: str, application: str) -> str:
    return (
        make_url(base_url)
        .update_query_dict({"options": f"-csearch_path={schema}", "application_name": application})
        .render_as_string(hide_password=False)
    )


class LockWaits:
    """Samples which of the app's database sessions are blocked on a lock, and on what.

    The throughput ratio depends on how much CPU the machine has free; this does
    not: calls queued on the bundle's row lock show up as sessions whose
    ``UPDATE bundles`` waits on a lock, whatever the speed of the machine. Other
    waits (e.g. ``extend``: PostgreSQL growing a table's file for concurrent
    inserts) are reported apart.
    """

    def __init__(self, admin: Engine, application: str) -> None:
        self._admin, self._application = admin, application
        self._stop = threading.Event()
        self.samples: list[list[str]] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        query = text(
            "SELECT wait_event, query FROM pg_stat_activity "
            "WHERE application_name = :a AND wait_event_type = 'Lock'"
        )
        with self._admin.connect() as connection:
            while not self._stop.wait(SAMPLE_EVERY_S):
                rows = connection.execute(query, {"a": self._application}).all()
                self.samples.append(
                    [
                        "bundle quota" if sql.startswith("UPDATE bundles") else str(event)
                        for event, sql in rows
                    ]
                )

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def shares(self) -> dict[str, float]:
        """For each kind of wait, the fraction of samples in which some call waited on it."""
        kinds = {kind for sample in self.samples for kind in sample} | {"bundle quota"}
        total = max(1, len(self.samples))
        return {kind: sum(kind in sample for sample in self.samples) / total for kind in kinds}


def _provision(client: TestClient, *, quota: int | None, tokens: int) -> tuple[str, list[str]]:
    """One bundle and ``tokens`` access tokens of one trial each."""
    with session_scope(client.app.state.session_factory) as session:  # type: ignore[attr-defined]
        creds = create_client(
            session, quota=quota, token_trials=1, token_lifetime_s=3600, name="bench"
        )
        user = repository.get_user(session, username=creds.username)
        app = repository.get_application(session, client_id=creds.client_id)
        issued = [
            repository.issue_token(session, user=user, application=app, refresh_lifetime_s=60)
            for _ in range(tokens)
        ]
        return creds.bundle_key, [token.access_token for token in issued]


def _run(client: TestClient, body: bytes, tokens: list[str], clients: int) -> float:
    """Calls per second for ``len(tokens)`` calls spread over ``clients`` threads."""

    def call(token: str) -> int:
        response = client.post(
            "/api/v1/face/match/",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return response.status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as threads:
        statuses = list(threads.map(call, tokens))
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return len(tokens) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("FACEMATCH_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (default: $FACEMATCH_TEST_POSTGRES_URL); a private schema is used",
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--calls", type=int, default=12, help="calls per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quota", choices=["limited", "unlimited"], default="limited")
    args = parser.parse_args()
    if not args.url:
        raise SystemExit("give --url or set FACEMATCH_TEST_POSTGRES_URL")

    image = base64.b64encode(b"\xff\xd8\xff\xe0" + os.urandom(IMAGE_BYTES - 4)).decode("ascii")
    schema = f"fm_bench_{uuid.uuid4().hex[:12]}"
    application = f"facematch-{schema}"
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                database_url=_schema_url(args.url, schema, application),
                data_dir=Path(data_dir),
                warm_up=False,
                image_keys=new_key_spec("bench"),
                purge_interval_s=0,
                max_inflight_matches=max(4, args.clients),
                request_timeout_s=120.0,
            )
            # The stub answers at once: what is measured is the service and the database.
            app = create_app(settings, matcher=StubMatcher())
            with TestClient(app) as client:
                quota = 10 * args.calls * args.repeats if args.quota == "limited" else None
                rates: dict[int, list[float]] = {1: [], args.clients: []}
                waits: dict[int, list[dict[str, float]]] = {1: [], args.clients: []}
                for _ in range(args.repeats + 1):  # the first round warms up and is dropped
                    for clients in rates:
                        key, tokens = _provision(client, quota=quota, tokens=args.calls)
                        body = json.dumps(
                            {"first_img": image, "second_img": image, "bundle_key": key}
                        ).encode("ascii")
                        with LockWaits(admin, application) as sampler:
                            rates[clients].append(_run(client, body, tokens, clients))
                        waits[clients].append(sampler.shares())
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    one = statistics.median(rates[1][1:])
    many = statistics.median(rates[args.clients][1:])
    print(
        f"{args.calls} calls per run, two 5 MiB images each, one bundle ({args.quota} quota), "
        f"PostgreSQL; median of {args.repeats} runs"
    )
    print(f"  1 client:  {one:6.2f} calls/s   runs {[round(r, 2) for r in rates[1][1:]]}")
    print(
        f"  {args.clients} clients: {many:6.2f} calls/s   runs "
        f"{[round(r, 2) for r in rates[args.clients][1:]]}"
    )
    print(f"  ratio {args.clients} clients / 1 client: {many / one:.2f}")
    for clients, runs in waits.items():
        kinds = sorted({kind for run in runs[1:] for kind in run})
        medians = {k: statistics.median(run.get(k, 0.0) for run in runs[1:]) for k in kinds}
        listed = ", ".join(f"{kind} {share:.0%}" for kind, share in medians.items())
        print(f"  {clients} client(s), share of the time a call waits on a lock: {listed}")
    print(f"  load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
