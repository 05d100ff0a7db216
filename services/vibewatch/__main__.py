"""``python -m vibewatch`` runs the command line."""

from vibewatch.cli import main

main()
