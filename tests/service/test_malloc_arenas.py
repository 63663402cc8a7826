"""The worker's malloc arena cap, checked in a fresh interpreter with glibc's own report."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from facematch.service.runtime.malloc_arenas import limit_malloc_arenas

# Eight threads allocate at once; glibc's malloc_stats() then lists one
# "Arena N:" block per arena on stderr.
PROBE = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys, threading
    from facematch.service.runtime.malloc_arenas import limit_malloc_arenas
    if sys.argv[1] == "limit":
        assert limit_malloc_arenas(2)
    barrier = threading.Barrier(8)
    def churn():
        barrier.wait()
        for _ in range(2000):
            blocks = [bytearray(5000) for _ in range(50)]
            del blocks
    threads = [threading.Thread(target=churn) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
    """
)


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="malloc arenas are glibc's; this is not Linux"
)
def test_worker_arena_cap_holds_under_concurrent_allocation() -> None:
    unlimited = _arenas("none")
    if unlimited == 0:
        pytest.skip("the C library is not glibc (malloc_stats printed no arenas)")
    # The probe does provoke extra arenas, so the cap below is a real effect.
    assert unlimited > 2
    assert _arenas("limit") <= 2


def test_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


def test_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="count"):
        limit_malloc_arenas(0)
