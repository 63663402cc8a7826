"""`facematch admin ...` (service issue)."""

from __future__ import annotations

import click


@click.group()
def admin() -> None:
    """Manage organisations, users, applications and bundles."""
