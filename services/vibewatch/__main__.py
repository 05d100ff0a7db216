"""``python -m vibewatch``: the command line."""

from vibewatch.cli import app

app(prog_name="vibewatch")
