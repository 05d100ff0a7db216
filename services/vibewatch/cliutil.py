"""What every ``vibewatch`` command shares: the ``--config`` and ``--json`` options, loading
the configuration, and failing with a message and an exit code (2: bad input, 1: failure)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from vibewatch.config import CONFIG_ENV, Config, load_config
from vibewatch.errors import ConfigError

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="TOML configuration file. Every key can also be set by a VIBEWATCH_<SECTION>_<KEY> "
        "environment variable, which wins over the file.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
PublicOption = Annotated[
    Path | None,
    typer.Option(
        "--public",
        help="Ed25519 public key (PEM) that package signatures are checked with "
        "(default: train.verify_key of the configuration).",
        show_default=False,
    ),
]


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load(path: Path | None, **overrides: str) -> Config:
    """Load the configuration; ``overrides`` are command-line values given as env variables.

    An invalid configuration ends the command with exit code 2 and every problem listed.
    """
    environ = {**os.environ, **overrides}
    try:
        return load_config(path, environ)
    except ConfigError as exc:
        fail(f"invalid configuration:\n{exc}", 2)
