"""What a password check costs at the token endpoint: scrypt before and after issue 10.

Times ``facematch.store.security.verify_password`` against a hash made with the
old cost (N=2^14, r=8, p=1) and with today's (OWASP: N=2^17, r=8, p=1), as the
median of repeated runs in this process; the ratio is against the old cost.
Also times a throttle decision (``FailureThrottle.retry_after_s``), which a
throttled request pays instead of a password check.

    python -m bench.password_hash [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from facematch.service.runtime.throttle import FailureThrottle
from facematch.store import security
from facematch.store.security import ScryptCost

OLD = ScryptCost(n=2**14, r=8, p=1)


def _median_s(function: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _hash_at(cost: ScryptCost) -> str:
    previous = security.PASSWORD_COST
    security.PASSWORD_COST = cost
    try:
        return security.hash_password("bench-password")
    finally:
        security.PASSWORD_COST = previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    old_hash, new_hash = _hash_at(OLD), _hash_at(security.PASSWORD_COST)
    old_s = _median_s(lambda: security.verify_password("bench-password", old_hash), args.repeats)
    new_s = _median_s(lambda: security.verify_password("bench-password", new_hash), args.repeats)
    throttle = FailureThrottle(limit=10, window_s=900)
    throttle_s = _median_s(lambda: [throttle.retry_after_s(f"u{i}") for i in range(1000)], 5)
    print(f"scrypt {OLD}: {old_s * 1000:.1f} ms per check, {OLD.memory_bytes / 2**20:.0f} MiB")
    cost = security.PASSWORD_COST
    print(
        f"scrypt {cost}: {new_s * 1000:.1f} ms per check, {cost.memory_bytes / 2**20:.0f} MiB "
        f"({new_s / old_s:.1f}x the old cost)"
    )
    print(f"throttle decision: {throttle_s / 1000 * 1e6:.1f} us")
    print(f"load average after: {os.getloadavg()[0]:.2f} (median of {args.repeats} runs)")


if __name__ == "__main__":
    main()
