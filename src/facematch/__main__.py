"""``python -m facematch`` runs the command line."""

from facematch.cli import main

main()
