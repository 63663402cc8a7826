"""Subcommands of the ``facematch`` CLI, one module per area."""
