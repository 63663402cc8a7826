"""``facematch serve`` as a real child process, for live tests and load benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from facematch.settings import Settings
from facematch.store import db

START_TIMEOUT_S = 180.0
READY_POLL_S = 0.2
STOP_TIMEOUT_S = 60.0
TCP_ESTABLISHED = "01"  # state column of /proc/net/tcp
# The console script installed beside this interpreter (same virtual environment).
FACEMATCH_CLI = str(Path(sys.executable).parent / "facematch")
STARTUP_LINE = "Application startup complete"  # uvicorn logs it once per worker


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``facematch serve`` with ``workers`` workers on a free loopback port.

    Development mode, the periodic purge off, the warm-up off unless asked for;
    ``env`` adds or overrides ``FACEMATCH_*`` variables. Use it as a context
    manager, or call :meth:`start` and :meth:`stop`; :meth:`stop` reaps the
    whole process group even when a worker hangs.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        log_path: Path,
        workers: int = 1,
        database_url: str | None = None,
        warm_up: bool = False,
        start_timeout_s: float = START_TIMEOUT_S,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.env = {
            **os.environ,
            "FACEMATCH_DATA_DIR": str(data_dir),
            "FACEMATCH_ENVIRONMENT": "development",
            "FACEMATCH_PURGE_INTERVAL_S": "0",
            "FACEMATCH_WARM_UP": "true" if warm_up else "false",
            **({"FACEMATCH_DATABASE_URL": database_url} if database_url else {}),
            **env,
        }
        # A metrics directory inherited from a parent server would mix its samples in.
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # The URL the server resolves (its SQLite file when none is given), for provisioning.
        self.database_url = db.database_url(
            Settings(
                environment="development",
                data_dir=data_dir,
                database_url=self.env.get("FACEMATCH_DATABASE_URL") or None,
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until every worker is ready."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    FACEMATCH_CLI,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so stop() can reap workers the parent left behind.
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL to the group after a minute."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def started_workers(self) -> int:
        """How many worker startups the log shows (a replaced worker adds one)."""
        return self.log().count(STARTUP_LINE)

    def wait_ready(self, *, workers: int | None = None) -> None:
        """Until /readyz answers 200 and ``workers`` workers have finished startup."""
        if self.process is None:
            raise RuntimeError("the server was not started")
        needed = self.workers if workers is None else workers
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log()}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            # Every worker must have started, not just the first one to answer.
            if ready and self.started_workers() >= needed:
                return
            time.sleep(READY_POLL_S)  # polling a child process's startup; nothing to wait on
        raise TimeoutError(f"server not ready after {self.start_timeout_s} s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """The processes running the app: the server itself with one worker (uvicorn
        then serves in-process), else its worker children."""
        if self.process is None:
            return []
        if self.workers == 1:
            return [self.process.pid]
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue  # the process ended while we looked
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
