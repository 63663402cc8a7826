"""The server's periodic retention purge (an asyncio task started by the app's lifespan).

Every ``purge_interval_s`` seconds the purge of :mod:`facematch.store.retention`
runs on a worker thread. Several workers or servers may run it at once: each
purge only touches rows not purged yet, so concurrent runs are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from facematch.store.db import session_scope
from facematch.store.retention import PurgeReport, purge_expired

logger = logging.getLogger(__name__)


def purge_once(session_factory: sessionmaker[Session]) -> PurgeReport:
    """One purge in its own database transaction."""
    with session_scope(session_factory) as session:
        return purge_expired(session)


async def purge_periodically(session_factory: sessionmaker[Session], interval_s: float) -> None:
    """Purge now, then every ``interval_s`` seconds, until cancelled; failures are logged."""
    while True:
        try:
            report = await run_in_threadpool(purge_once, session_factory)
        except Exception:
            # A failed purge (database briefly away) must not stop later ones.
            logger.exception("retention purge failed")
        else:
            if report.transactions:
                logger.info(
                    "retention purge",
                    extra={"transactions": report.transactions, "images": report.images},
                )
        await asyncio.sleep(interval_s)


def start_purge_task(
    session_factory: sessionmaker[Session], interval_s: float
) -> asyncio.Task[None] | None:
    """Start the periodic purge; None when ``interval_s`` is 0 (turned off)."""
    if interval_s <= 0:
        return None
    return asyncio.create_task(purge_periodically(session_factory, interval_s))


async def stop_purge_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
