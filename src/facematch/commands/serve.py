"""`facematch serve`: the HTTP service on uvicorn, one worker process per core by default."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from facematch.settings import Settings

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_metrics_dir() -> Path | None:
    """An empty directory for prometheus-client's multiprocess mode.

    With several workers a scrape of /metrics lands on any one of them, so every
    worker writes its metrics to files in one shared directory and each scrape
    sums them all (see facematch.service.runtime.metrics). An operator-supplied
    directory is emptied first (stale files from an earlier run would be
    summed in); otherwise a fresh temporary one is made and removed at exit.
    Returns the directory to remove at exit, if any.
    """
    configured = os.environ.get(METRICS_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    directory = Path(tempfile.mkdtemp(prefix="facematch-metrics-"))
    os.environ[METRICS_ENV] = str(directory)  # inherited by the worker processes
    return directory


def _preflight(settings: Settings) -> None:
    """Check the keys and bring the schema up to date once, before any worker starts.

    Workers repeat both in their lifespan, but a configuration error is clearer
    said once here than as N worker tracebacks, and N workers racing to create
    the same tables on a fresh database would fail.
    """
    from facematch.store import db, repository
    from facematch.store.vault import VaultConfigError, vault_from_settings

    try:
        vault_from_settings(settings)
    except VaultConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    engine = db.create_db_engine(db.database_url(settings))
    try:
        db.migrate(engine)
        with db.create_session_factory(engine)() as session:
            first_start = repository.count_applications(session) == 0
    except db.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    if first_start:
        _print_first_client_hint(settings)


def _print_first_client_hint(settings: Settings) -> None:
    """A fresh database has no API client: say how to make the first one."""
    from sqlalchemy.engine import make_url

    from facematch.store import db

    where = make_url(db.database_url(settings)).render_as_string(hide_password=True)
    click.echo(
        f"facematch: database {where} has no API clients yet. Create one with\n"
        "  facematch admin bootstrap --organisation ACME --username alice\n"
        "It prints the password, client_id, client_secret and bundle_key a client needs "
        "(docs/api.md).",
        err=True,
    )


@click.command()
@click.option("--host", default=None, help="Interface to listen on [default: FACEMATCH_HOST].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port [default: FACEMATCH_PORT].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Worker processes; 0 = one per CPU core [default: FACEMATCH_WORKERS, 0].",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP service (Valify-compatible face match API).

    Each worker process loads the face engine and opens the database before it
    accepts requests (/readyz turns 200 then). On SIGTERM or Ctrl-C, workers
    stop accepting, let in-flight requests finish for up to
    FACEMATCH_GRACEFUL_SHUTDOWN_S seconds, then exit. All configuration comes
    from FACEMATCH_* variables (docs/configuration.md, docs/operations.md).
    """
    import uvicorn

    from facematch.commands.transactions import check_image_keys
    from facematch.service.runtime.http_protocol import GuardedHTTPProtocol
    from facematch.service.runtime.logging import configure_logging
    from facematch.service.runtime.workpool import default_threads
    from facematch.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    count = workers if workers is not None else settings.workers
    count = count or default_threads()
    check_image_keys(settings)  # docs/transactions.md: no keys, no server
    _preflight(settings)
    cleanup = _prepare_metrics_dir() if count > 1 else None
    try:
        uvicorn.run(
            "facematch.service.app:worker_app",
            factory=True,
            host=host or settings.host,
            port=settings.port if port is None else port,
            workers=count,
            # Logging is set up by facematch (JSON, redacted) in every worker;
            # the access log comes from the request-id middleware instead.
            log_config=None,
            access_log=False,
            server_header=False,
            # Nagle off, head deadline and size, connection limit (see the module).
            http=GuardedHTTPProtocol,
            # uvicorn annotates this int but only hands it to loop.call_later (a float).
            timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]
            h11_max_incomplete_event_size=settings.max_header_bytes,
            timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_s),
        )
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
