"""What every ``vibewatch`` command shares: the app and command classes, the ``--config``,
``--json`` and ``--public`` options, loading the configuration, finding a model package,
and failing with a one-line message and an exit code.

Exit codes: 0 success; 1 a failure (a package fails verification, a write or the state
database fails); 2 bad input (an invalid configuration, option, file, key or package path).
Errors are mapped to exit codes here, at the command-line boundary, by :func:`fail_with`.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from vibewatch.config import CONFIG_ENV, Config, load_config
from vibewatch.errors import (
    ConfigError,
    DataError,
    KeyFileError,
    PackageError,
    VibewatchError,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CommandFunction = TypeVar("CommandFunction", bound=Callable[..., Any])
#: Errors that mean the input was wrong (exit code 2); every other error is a failure (1).
USER_ERRORS: tuple[type[VibewatchError], ...] = (ConfigError, DataError, KeyFileError)


def _untyped_flags(params: Sequence[Any]) -> None:
    """Give flag options an empty metavar, so the help shows no type next to them.

    Typer's rich help shows every option's type, a flag's ``<bool>`` (``--help``, ``--json``)
    included; a set metavar takes the type's place in that column.
    """
    for param in params:
        is_flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
        if getattr(param, "param_type_name", "") == "option" and is_flag and param.metavar is None:
            param.metavar = ""


class _UntypedFlagsMixin:
    """Flags, ``--help`` included, show no type in ``--help``."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _untyped_flags(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        """The ``--help`` option, without a type in the help."""
        option = super().get_help_option(ctx)  # type: ignore[misc]
        _untyped_flags([option])
        return option


class Command(_UntypedFlagsMixin, TyperCommand):
    """A typer command whose flags show no type in ``--help``."""


class Group(_UntypedFlagsMixin, TyperGroup):
    """A typer group whose flags show no type in ``--help``."""


class App(typer.Typer):
    """A ``vibewatch`` command group: markdown help, no completion, :class:`Command` commands."""

    def __init__(self, *, help: str, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(
            cls=Group, rich_markup_mode="markdown", add_completion=False, help=help, **kwargs
        )

    def command(
        self, name: str | None = None, *, cls: Any = None, **kwargs: Any
    ) -> Callable[[CommandFunction], CommandFunction]:
        """Register a command; its class is :class:`Command` unless ``cls`` says otherwise."""
        return super().command(name, cls=cls or Command, **kwargs)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        # Backticks: the markdown help would read <SECTION> as an HTML tag and drop it.
        help="TOML configuration file. Every key can also be set by a "
        "`VIBEWATCH_<SECTION>_<KEY>` environment variable, which wins over the file.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
PublicOption = Annotated[
    Path | None,
    typer.Option(
        "--public",
        help="Ed25519 public key (PEM) that package signatures are checked with "
        "\\[default: train.verify_key of the configuration].",
        show_default=False,
    ),
]


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def fail_with(exc: VibewatchError) -> NoReturn:
    """Exit with ``exc``'s message: code 2 for :data:`USER_ERRORS`, else 1."""
    fail(str(exc), 2 if isinstance(exc, USER_ERRORS) else 1)


@contextmanager
def exits(*user_errors: type[VibewatchError]) -> Iterator[None]:
    """Turn errors raised in the block into :func:`fail_with`'s message and exit code.

    An :class:`OSError` (a file the command writes) is a failure, exit code 1.

    Args:
        user_errors: Further error types that count as bad input (exit code 2) here, such
            as :class:`PackageError` for a package the user pointed at.
    """
    try:
        yield
    except VibewatchError as exc:
        if isinstance(exc, user_errors):
            fail(str(exc), 2)
        fail_with(exc)
    except OSError as exc:
        # A file the command writes (its output directory, a model card) cannot be.
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}", 1)


def load(path: Path | None, **overrides: str) -> Config:
    """Load the configuration; ``overrides`` are command-line values given as env variables.

    An invalid configuration ends the command with exit code 2 and every problem listed.
    """
    environ = {**os.environ, **overrides}
    try:
        return load_config(path, environ)
    except ConfigError as exc:
        # The error's text has its own header ("invalid configuration (2 problems):").
        fail(str(exc), 2)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)?")


def duration(text: str, what: str) -> float:
    """Seconds of a duration like ``90s``, ``15m``, ``2h`` or ``1d`` (a bare number is
    seconds); exit 2 naming ``what`` for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        fail(f"{what} must be a duration like 90s, 15m, 2h or 1d, not {text!r}", 2)
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[match[2]]


@contextmanager
def state_db(config: Path | None) -> Iterator[sqlite3.Connection]:
    """The configuration's state database, open for the command (exit 1 when it cannot
    be used), closed after it."""
    from vibewatch.state import StateError, open_state_db

    try:
        db = open_state_db(load(config).state_db)
    except StateError as exc:
        fail(str(exc), 1)
    try:
        yield db
    finally:
        db.close()


def config_json(config: Config) -> dict[str, Any]:
    """The configuration as plain data, secrets masked: top-level keys at the top level,
    each section's keys under its name."""
    out: dict[str, Any] = {}
    for section, keys in config.redacted().items():
        if section:
            out[section] = keys
        else:
            out.update(keys)
    return out


# --- model packages ------------------------------------------------------------------


def package_dir(path: Path) -> Path:
    """The package directory ``path`` names: itself, or the one package directory inside it.

    ``vibewatch train --out OUT`` writes the package to a directory in ``OUT`` beside its
    model card and plots, so ``OUT`` itself also names the package.

    Raises:
        PackageError: ``path`` does not exist, is not a directory, or holds neither a
            package file nor one directory holding a package.
    """
    if not path.exists():
        raise PackageError(str(path), [f"{path} does not exist"])
    if not path.is_dir():
        raise PackageError(str(path), [f"{path} is not a directory"])
    from vibewatch.models.package import MANIFEST, PACKAGE_FILES

    if any((path / name).exists() for name in PACKAGE_FILES):
        return path
    inside = [d for d in sorted(path.iterdir()) if d.is_dir() and (d / MANIFEST).is_file()]
    if len(inside) == 1:
        return inside[0]
    raise PackageError(str(path), [f"{path} holds no model package ({', '.join(PACKAGE_FILES)})"])


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, as a user types it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def signer_key_hint(package: Path, tried: Path | None) -> str | None:
    """Which public key beside a package verifies its signature, as advice; None if none.

    The public keys (``*.pub``) in the package's parent directory and the one above are
    tried: ``models/release-signing.pub`` for ``models/factory/package``, for instance.
    The advice then reads ``signed with the release key: add --public
    models/release-signing.pub`` (the key is named after its file, less ``-signing``).

    Args:
        package: The package directory.
        tried: The key file that was used (and did not verify, or does not exist).
    """
    from cryptography.exceptions import InvalidSignature

    from vibewatch.models.keys import load_public_key
    from vibewatch.models.package import MANIFEST, SIGNATURE

    try:
        manifest = (package / MANIFEST).read_bytes()
        signature = (package / SIGNATURE).read_bytes()
    except OSError:
        return None
    parents = [package.resolve().parent, package.resolve().parent.parent]
    for candidate in (key for folder in parents for key in sorted(folder.glob("*.pub"))):
        if tried is not None and candidate.resolve() == tried.resolve():
            continue
        try:
            load_public_key(candidate).verify(signature, manifest)
        except (KeyFileError, InvalidSignature, ValueError):
            continue
        name = candidate.stem.removesuffix("-signing").replace("-", " ").replace("_", " ")
        return f"signed with the {name} key: add --public {_shown(candidate)}"
    return None


def public_key_path(public: Path | None, config: Path | None) -> Path:
    """The public key file: ``--public``, else ``train.verify_key`` of the configuration."""
    return public if public is not None else load(config).train.verify_key


def check_key_for(package: Path, key_path: Path) -> None:
    """Exit 2 with advice when ``key_path`` is missing or does not verify ``package``.

    Only the signature is checked here, and only to give advice: when a public key beside
    the package verifies it, the message names that key. Otherwise nothing happens and
    verification reports what it finds.
    """
    from cryptography.exceptions import InvalidSignature

    from vibewatch.models.keys import load_public_key
    from vibewatch.models.package import MANIFEST, SIGNATURE

    try:
        key = load_public_key(key_path)
    except KeyFileError as exc:
        hint = signer_key_hint(package, key_path)
        fail(f"{exc}; {package} is {hint}" if hint else str(exc), 2)
    try:
        key.verify((package / SIGNATURE).read_bytes(), (package / MANIFEST).read_bytes())
    except (OSError, InvalidSignature, ValueError):
        hint = signer_key_hint(package, key_path)
        if hint is not None:
            fail(f"the signature of {package} does not verify with {key_path}; it is {hint}", 2)


class ProgressLine:
    """Progress on standard error: one line rewritten in place on a terminal; elsewhere (a
    log file, a pipe) a new line at most every ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        """Write to standard error; ``every``: seconds between lines when it is no terminal."""
        self._tty = sys.stderr.isatty()
        self._every = every
        self._last = -math.inf
        self._open = False

    def show(self, text: str) -> None:
        """Show ``text`` as the current progress."""
        if self._tty:
            sys.stderr.write("\r\033[K" + text)
            self._open = True
        elif time.monotonic() - self._last >= self._every:
            self._last = time.monotonic()
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def say(self, text: str) -> None:
        """Print ``text`` on a line of its own (a step done), above the progress line."""
        self.end()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        """End the progress line on a terminal (the next output starts on a new line)."""
        if self._open:
            sys.stderr.write("\n")
            self._open = False


def load_signing_key(path: Path, *, given: bool) -> Ed25519PrivateKey:
    """The private key at ``path``; a missing one ends the command (exit 2) with how to
    make it.

    Args:
        path: The key file.
        given: Whether the user named it (``--signing-key``) or it is the configured one.
    """
    from vibewatch.models.keys import load_private_key

    if not path.exists() and not path.is_symlink():
        make = "vibewatch keys generate" + (
            f" --private {path} --public PUBLIC_KEY" if given else ""
        )
        fail(
            f"private key {path} does not exist: packages are signed with it; create a key "
            f"pair with `{make}`" + ("" if given else " or pass --signing-key"),
            2,
        )
    with exits():
        return load_private_key(path)
