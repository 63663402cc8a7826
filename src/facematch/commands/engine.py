"""`facematch compare`, `facematch eval lfw`, `facematch calibrate` (engine issue)."""

from __future__ import annotations

import click


@click.command()
def compare() -> None:
    """Compare two face photos (not built yet)."""
    raise click.ClickException("not built yet")


@click.group("eval")
def eval_group() -> None:
    """Evaluate accuracy on a benchmark."""


@click.command()
def calibrate() -> None:
    """Fit calibration (not built yet)."""
    raise click.ClickException("not built yet")
