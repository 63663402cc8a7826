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

:class:`TokenGuard` is that per-process state of the token endpoint: the two
throttles (client address, username) and the bound on password checks running
at once; routes get it through ``TokenGuardDep`` (:mod:`facematch.service.api.deps`).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from facematch.service.errors import OAuthInvalidClient, OAuthInvalidGrant, OAuthRefusal
from facematch.settings import Settings

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


# Answers that mean "wrong credentials" count as failures; malformed requests do not.
_CLIENT_FAILURES = (OAuthInvalidClient, OAuthInvalidGrant)
_USERNAME_FAILURES = (OAuthInvalidGrant,)


@dataclass(frozen=True)
class TokenGuard:
    """Per-process state of the token endpoint: failure throttles and the bound on
    password checks running at once (each scrypt check holds 128 MiB)."""

    clients: FailureThrottle | None
    usernames: FailureThrottle | None
    password_checks: anyio.CapacityLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenGuard:
        """The guard ``settings`` ask for; call it on the event loop (a CapacityLimiter
        belongs to the running loop)."""

        def throttle(limit: int) -> FailureThrottle | None:
            if limit == 0:
                return None
            return FailureThrottle(limit=limit, window_s=settings.token_throttle_window_s)

        return cls(
            clients=throttle(settings.token_throttle_client_failures),
            usernames=throttle(settings.token_throttle_username_failures),
            password_checks=anyio.CapacityLimiter(settings.password_hash_concurrency),
        )

    def retry_after_s(self, *, client: str, username: str | None) -> int | None:
        waits = [
            throttle.retry_after_s(key)
            for throttle, key in ((self.clients, client), (self.usernames, username))
            if throttle is not None and key is not None
        ]
        return max((wait for wait in waits if wait is not None), default=None)

    def record_failure(self, refusal: OAuthRefusal, *, client: str, username: str | None) -> None:
        if self.clients is not None and isinstance(refusal, _CLIENT_FAILURES):
            self.clients.record_failure(client)
        if self.usernames is not None and username and isinstance(refusal, _USERNAME_FAILURES):
            self.usernames.record_failure(username)
