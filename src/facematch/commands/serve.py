"""`facematch serve` (service issue)."""

from __future__ import annotations

import click


@click.command()
def serve() -> None:
    """Run the HTTP service (not built yet)."""
    raise click.ClickException("not built yet")
