"""Real `facematch serve` processes for the fault tests, and provisioning in their database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from facematch.store import db, repository
from facematch.store.models import AccessToken, Bundle, Transaction
from facematch.store.security import digest_secret

START_TIMEOUT_S = 180.0
TCP_ESTABLISHED = "01"  # state column of /proc/net/tcp
# The console script installed beside this interpreter (same virtual environment).
FACEMATCH_CLI = str(Path(sys.executable).parent / "facematch")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``facematch serve`` on a free loopback port; stopped (and reaped) on exit."""

    def __init__(
        self, *, database_url: str, data_dir: Path, workers: int, log_path: Path, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log_path = log_path
        self.env = {
            **os.environ,
            "FACEMATCH_DATABASE_URL": database_url,
            "FACEMATCH_DATA_DIR": str(data_dir),
            "FACEMATCH_ENVIRONMENT": "development",
            "FACEMATCH_PURGE_INTERVAL_S": "0",
            "FACEMATCH_WARM_UP": "false",
            **env,
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LiveServer:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    FACEMATCH_CLI,
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def started_workers(self) -> int:
        return self.log().count("Application startup complete")

    def wait_ready(self, *, workers: int | None = None) -> None:
        """Until /readyz answers 200 and ``workers`` workers have finished startup."""
        needed = self.workers if workers is None else workers
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log()}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and self.started_workers() >= needed:
                return
            time.sleep(0.2)  # polling a child process's startup; nothing to wait on
        raise TimeoutError(f"server not ready after {START_TIMEOUT_S} s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children running the app)."""
        assert self.process is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and b"resource_tracker" not in cmdline:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def connections_by_worker(self) -> dict[int, int]:
        """Per worker pid, how many accepted client connections on our port it holds.

        The workers share one listening socket and each accepts greedily, so
        which worker holds a burst's connections is up to the scheduler; tests
        that must hit requests in flight ask here instead of guessing.
        """
        established = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == self.port and fields[3] == TCP_ESTABLISHED:
                    established.add(f"socket:[{fields[9]}]")
        held = {}
        for pid in self.worker_pids():
            count = 0
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                try:
                    count += os.readlink(fd) in established
                except OSError:
                    continue
            held[pid] = count
        return held


@dataclass(frozen=True)
class Client:
    username: str
    password: str
    client_id: str
    client_secret: str
    bundle_key: str
    bundle_id: int


def provision(database_url: str, *, quota: int | None, token_trials: int) -> Client:
    """Organisation, user, bundle and application, written straight into the database."""
    engine = db.create_db_engine(database_url)
    db.migrate(engine)
    suffix = uuid.uuid4().hex[:10]
    try:
        with db.session_scope(db.create_session_factory(engine)) as session:
            org = repository.create_organisation(session, name=f"org-{suffix}")
            user = repository.create_user(
                session, organisation=org, username=f"user-{suffix}", password=f"pw-{suffix}"
            )
            bundle, key = repository.create_bundle(
                session, organisation=org, quota=quota, token_trials=token_trials
            )
            app, secret = repository.create_application(
                session, organisation=org, bundle=bundle, name="fault test"
            )
            return Client(user.username, f"pw-{suffix}", app.client_id, secret, key, bundle.id)
    finally:
        engine.dispose()


def token_from(url: str, client: Client) -> str:
    response = httpx.post(
        f"{url}/api/o/token/",
        data={
            "grant_type": "password",
            "username": client.username,
            "password": client.password,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@dataclass(frozen=True)
class Ledger:
    """What the database says happened, for exactness checks."""

    transactions: dict[str, tuple[str, int | None, bool | None]]  # id → outcome, code, similar
    quota_remaining: int | None
    trials_remaining: dict[str, int]  # access token → trials left


def ledger(database_url: str, *, bundle_id: int, tokens: list[str]) -> Ledger:
    engine = db.create_db_engine(database_url)
    try:
        with db.create_session_factory(engine)() as session:
            rows = session.execute(
                select(
                    Transaction.id,
                    Transaction.outcome,
                    Transaction.error_code,
                    Transaction.is_similar,
                ).where(Transaction.bundle_id == bundle_id)
            ).all()
            bundle = session.get(Bundle, bundle_id)
            trials = {}
            for token in tokens:
                row = session.execute(
                    select(AccessToken).where(AccessToken.token_hash == digest_secret(token))
                ).scalar_one()
                trials[token] = row.trials_remaining
            return Ledger(
                transactions={row[0]: (row[1], row[2], row[3]) for row in rows},
                quota_remaining=bundle.quota_remaining if bundle else None,
                trials_remaining=trials,
            )
    finally:
        engine.dispose()
