"""Fewer glibc malloc arenas in a worker, so its RSS stops creeping under load.

glibc gives threads that allocate concurrently their own malloc arena (up to
8 per core). A worker's engine threads, the anyio threads running database
calls and the event loop each churn through megabytes per request (decoded
images, HOG pyramids, a JSON body carrying two images), and memory freed in
one arena is not reused by the others. With this cap a worker's RSS is lower
and grows less under steady load, at the same CPU per request (the soaks are
in docs/performance.md). ``MALLOC_ARENA_MAX`` in the environment, glibc's own
knob, wins over this default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["WORKER_MALLOC_ARENAS", "limit_malloc_arenas"]

logger = logging.getLogger(__name__)

WORKER_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas(count: int = WORKER_MALLOC_ARENAS) -> bool:
    """Cap this process's malloc arenas at ``count``; True when glibc took the setting.

    Call before the worker starts its threads (arenas already made stay). Does
    nothing where the C library is not glibc, or when ``MALLOC_ARENA_MAX`` is set
    (glibc applied that at start-up).
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = mallopt(_M_ARENA_MAX, count) == 1
    if not applied:  # e.g. musl's mallopt, which accepts nothing
        logger.info("malloc arenas not limited: the C library refused M_ARENA_MAX")
    return applied
