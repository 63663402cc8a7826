"""The ``facematch`` command line: a thin layer over library calls.

Subcommands live in :mod:`facematch.commands`, one module per area, so that
``facematch --help`` stays cheap (heavy imports happen inside the commands).
"""

from __future__ import annotations

import click

from facematch.commands.admin import admin
from facematch.commands.engine import calibrate, compare, eval_group
from facematch.commands.postman import postman
from facematch.commands.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facematch")
def cli() -> None:
    """facematch: self-hosted face verification (Valify Face Match API)."""


cli.add_command(compare)
cli.add_command(eval_group)
cli.add_command(calibrate)
cli.add_command(serve)
cli.add_command(admin)
cli.add_command(postman)


def main() -> None:
    # No auto_envvar_prefix: each option names its variable (docs/cli.md lists them);
    # click's automatic FACEMATCH_<COMMAND>_<OPTION> names were undocumented and
    # shadowed the settings (FACEMATCH_SERVE_PORT beside FACEMATCH_PORT).
    cli()


if __name__ == "__main__":
    main()
