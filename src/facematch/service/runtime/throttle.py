"""Throttling of failed logins at the token endpoint, per process, in fixed memory.

:class:`FailureThrottle` keeps a leaky bucket per key (a username, a client
address): each failure adds one, the level drains at ``limit / window_s`` per
second, and a key is let through only while one more failure would not take
its level above ``limit``. So a key may fail ``limit`` times in a burst, then
once every ``window_s / limit`` seconds.

Memory never grows with what clients send: keys are not stored. Each key is
hashed, with a random per-process secret (so nobody can aim collisions), onto
one bucket in each of two rows of ``slots`` buckets, and its level is the lower
of the two (a count-min sketch). Two keys share both buckets only by rare
accident; then they share a level, which can only make the throttle stricter,
never let a key through early. Flooding the table costs the attacker one
password check per failure, which the server cannot run fast enough to raise
thousands of buckets to the limit.

The table is per worker process: N workers allow up to N × ``limit`` failures
per key (docs/operations.md says what a fronting proxy should add).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from array import array
from collections.abc import Callable

ROWS = 2
DEFAULT_SLOTS = 8192  # per row: 2 × 8192 buckets × 2 doubles = 256 KiB


class FailureThrottle:
    """Recent failures per key, in a fixed-size table (see the module docstring)."""

    def __init__(
        self,
        *,
        limit: int,
        window_s: float,
        slots: int = DEFAULT_SLOTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0 or slots < 1:
            raise ValueError("limit and slots must be >= 1 and window_s > 0")
        self.limit = limit
        self._rate = limit / window_s  # failures drained per second
        self._slots = slots
        self._clock = clock
        self._secret = secrets.token_bytes(16)
        self._levels = array("d", bytes(8 * ROWS * slots))
        self._stamps = array("d", bytes(8 * ROWS * slots))
        self._lock = threading.Lock()

    @property
    def memory_bytes(self) -> int:
        return self._levels.itemsize * (len(self._levels) + len(self._stamps))

    def _buckets(self, key: str) -> tuple[int, ...]:
        digest = hashlib.blake2b(
            key.encode("utf-8", "surrogatepass"), key=self._secret, digest_size=8 * ROWS
        ).digest()
        return tuple(
            row * self._slots + int.from_bytes(digest[8 * row : 8 * row + 8]) % self._slots
            for row in range(ROWS)
        )

    def _level(self, bucket: int, now: float) -> float:
        drained = (now - self._stamps[bucket]) * self._rate
        return max(0.0, self._levels[bucket] - drained)

    def retry_after_s(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        with self._lock:
            now = self._clock()
            level = min(self._level(bucket, now) for bucket in self._buckets(key))
        # Room for one more failure: the level may be at most limit - 1 (the
        # tolerance absorbs float drift in the drained amount).
        excess = level - (self.limit - 1)
        if excess <= 1e-9:
            return None
        return max(1, math.ceil(excess / self._rate - 1e-9))

    def record_failure(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            for bucket in self._buckets(key):
                self._levels[bucket] = self._level(bucket, now) + 1.0
                self._stamps[bucket] = now
