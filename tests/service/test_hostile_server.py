"""A real `facematch serve` under anonymous abuse: nothing read, nothing kept (issue 10, defect 5).

Before the fix the server read (and buffered) every body before looking at
the token: ten anonymous 16 MB bodies cost +136 MiB RSS, never returned.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from facematch.testing.live import LiveServer

BODY_BYTES = 16_000_000  # under the 16 MiB default limit: only the token can refuse it
BURST = 10
ANSWER_WITHIN_S = 10.0


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _anonymous_big_post(port: int) -> bytes:
    """Send only the head of a 16 MB anonymous POST; the answer must come unasked."""
    head = (
        "POST /api/v1/face/match/ HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes
            answer += chunk
        # The body the server never asked for: refused or discarded, never kept.
        with contextlib.suppress(OSError):
            sock.sendall(b"A" * BODY_BYTES)
        return answer


@pytest.mark.slow
def test_anonymous_big_bodies_are_refused_unread_and_cost_no_memory(tmp_path: Path) -> None:
    with LiveServer(
        database_url=f"sqlite:///{tmp_path / 'hostile.sqlite3'}",
        data_dir=tmp_path,
        workers=2,
        log_path=tmp_path / "server.log",
    ) as server:
        workers = server.worker_pids()
        before = sum(_rss_bytes(pid) for pid in workers)
        answers: list[bytes] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                answers.append(_anonymous_big_post(server.port))
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(BURST)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        after = sum(_rss_bytes(pid) for pid in workers)
        assert server.worker_pids() == workers  # no worker died or was replaced

    assert not errors, errors
    assert len(answers) == BURST
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert b"connection: close" in answer.lower()
    assert after <= before * 1.10, (before, after)
