"""Click options shared by more than one command module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def bundle_id_option(help_text: str) -> Callable[[Any], Any]:
    """``--bundle-id`` (required, also ``FACEMATCH_ADMIN_BUNDLE_ID``), with its own help."""
    return click.option(
        "--bundle-id",
        type=int,
        required=True,
        envvar="FACEMATCH_ADMIN_BUNDLE_ID",
        help=help_text,
    )
