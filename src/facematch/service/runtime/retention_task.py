"""The server's periodic housekeeping (an asyncio task started by the app's lifespan).

Every ``purge_interval_s`` seconds, on a worker thread, the retention purge of
:mod:`facematch.store.retention` runs, and transactions still ``pending`` more
than ``pending_after_s`` after they began are closed as ``abandoned``. Several
workers or servers may run it at once: each step only touches rows not handled
yet, so concurrent runs are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from facematch.store.db import session_scope
from facematch.store.models import utcnow
from facematch.store.retention import PurgeReport, abandon_stale_pending, purge_expired

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HousekeepingReport:
    purge: PurgeReport
    abandoned: int


def purge_once(
    session_factory: sessionmaker[Session], pending_after_s: float | None = None
) -> HousekeepingReport:
    """One purge and (``pending_after_s``) one sweep of stale pending rows, each in its
    own database transaction."""
    with session_scope(session_factory) as session:
        purge = purge_expired(session)
    abandoned = 0
    if pending_after_s is not None:
        with session_scope(session_factory) as session:
            abandoned = abandon_stale_pending(
                session, older_than=utcnow() - timedelta(seconds=pending_after_s)
            )
    return HousekeepingReport(purge=purge, abandoned=abandoned)


async def purge_periodically(
    session_factory: sessionmaker[Session],
    interval_s: float,
    pending_after_s: float | None = None,
) -> None:
    """Purge now, then every ``interval_s`` seconds, until cancelled; failures are logged."""
    while True:
        try:
            report = await run_in_threadpool(purge_once, session_factory, pending_after_s)
        except Exception:
            # A failed purge (database briefly away) must not stop later ones.
            logger.exception("retention purge failed")
        else:
            if report.purge.transactions:
                logger.info(
                    "retention purge",
                    extra={
                        "transactions": report.purge.transactions,
                        "images": report.purge.images,
                    },
                )
            if report.abandoned:
                logger.warning(
                    "pending transactions abandoned", extra={"transactions": report.abandoned}
                )
        await asyncio.sleep(interval_s)


def start_purge_task(
    session_factory: sessionmaker[Session],
    interval_s: float,
    pending_after_s: float | None = None,
) -> asyncio.Task[None] | None:
    """Start the periodic housekeeping; None when ``interval_s`` is 0 (turned off)."""
    if interval_s <= 0:
        return None
    return asyncio.create_task(purge_periodically(session_factory, interval_s, pending_after_s))


async def stop_purge_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
