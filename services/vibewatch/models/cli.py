"""``vibewatch keys …`` and ``vibewatch models …``: signing keys and the model registry.

Exit codes: 0 success, 1 a failure (a package fails verification, a key file already
exists, the state database cannot be used), 2 bad input (an invalid configuration, an
unknown model, a missing or unusable key file, a path that is not a package, an export
directory that is not empty).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vibewatch.cliutil import (
    App,
    ConfigOption,
    JsonOption,
    PublicOption,
    check_key_for,
    fail,
    load,
    load_signing_key,
    package_dir,
    public_key_path,
)
from vibewatch.errors import KeyFileError, PackageError, RegistryError
from vibewatch.models.keys import (
    fingerprint,
    generate_keypair,
    load_public_key,
    public_key_c_header,
)
from vibewatch.models.package import ModelPackage, sign_rollback, verify_package
from vibewatch.models.registry import Registry, RegistryEntry
from vibewatch.state import StateError

__all__ = ["keys_app", "models_app"]

keys_app = App(help="Ed25519 keys that sign model packages.")
models_app = App(
    help="The model registry: signed model packages under the data home, indexed in the "
    "state database."
)

ModelIdArgument = Annotated[str, typer.Argument(help="Model id.", show_default=False)]
VersionArgument = Annotated[int, typer.Argument(min=1, help="Model version.", show_default=False)]


def _public_key(path: Path | None, config: Path | None) -> Ed25519PublicKey:
    try:
        return load_public_key(path if path is not None else load(config).train.verify_key)
    except KeyFileError as exc:
        fail(str(exc), 2)


@contextmanager
def _registry(config: Path | None, public_key: Ed25519PublicKey | None) -> Iterator[Registry]:
    cfg = load(config)
    try:
        registry = Registry(cfg.train.registry_dir, cfg.state_db, public_key)
    except StateError as exc:
        fail(str(exc), 1)
    with registry:
        yield registry


def _known(registry: Registry, model_id: str, version: int | None = None) -> RegistryEntry:
    """The entry of ``model_id`` (its latest version when ``version`` is None), or exit 2."""
    if version is None:
        entries = registry.entries(model_id)
        if not entries:
            fail(f"no version of model {model_id!r} is registered", 2)
        return entries[-1]
    try:
        return registry.get(model_id, version)
    except RegistryError as exc:
        fail(str(exc), 2)


# --- keys -------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    private: Annotated[
        Path | None,
        typer.Option(
            "--private",
            help="Where the private key goes, written with mode 0600 "
            "(default: train.signing_key of the configuration).",
            show_default=False,
        ),
    ] = None,
    public: Annotated[
        Path | None,
        typer.Option(
            "--public",
            help="Where the public key goes (default: train.verify_key of the configuration).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create the Ed25519 key pair that signs model packages.

    The private key is written with mode 0600 and never printed: keep it on
    the machine that trains, off devices and out of version control. Devices
    get the public key (`vibewatch keys export-c`). Existing files are kept
    unless --force is given.
    """
    if private is None or public is None:
        train = load(config).train
        private = train.signing_key if private is None else private
        public = train.verify_key if public is None else public
    try:
        key = generate_keypair(private, public, overwrite=force)
    except KeyFileError as exc:
        fail(str(exc), 1)
    typer.echo(f"private key: {private} (mode 0600, keep it secret)")
    typer.echo(f"public key:  {public}")
    typer.echo(f"fingerprint: {fingerprint(key)}")


@keys_app.command("export-c")
def keys_export_c(
    public: PublicOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the header to FILE instead of stdout.", show_default=False
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="C name of the 32-byte array.")
    ] = "VW_MODEL_PUBLIC_KEY",
    config: ConfigOption = None,
) -> None:
    """Print the public key as a C header, for the firmware that checks package signatures."""
    key = _public_key(public, config)
    try:
        header = public_key_c_header(key, name=name)
    except ValueError as exc:
        fail(f"--name: {exc}", 2)
    if out is None:
        typer.echo(header, nl=False)
        return
    try:
        out.write_text(header, encoding="ascii")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", 1)
    typer.echo(f"wrote {out} ({fingerprint(key)})", err=True)


# --- models -----------------------------------------------------------------------


@models_app.command("list")
def models_list(
    model_id: Annotated[
        str | None,
        typer.Option("--model-id", help="Only this model id.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List registered packages: model id, version, status, when registered and why decided."""
    with _registry(config, None) as registry:
        entries = registry.entries(model_id)
    if as_json:
        typer.echo(json.dumps([entry.as_json() for entry in entries], indent=2))
        return
    if not entries:
        typer.echo("no model is registered" + (f" as {model_id!r}" if model_id else ""))
        return
    rows = [("MODEL", "VERSION", "STATUS", "REGISTERED", "REASON")] + [
        (
            e.model_id,
            str(e.version),
            e.status,
            e.registered_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            e.reason or "",
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


def _summary(entry: RegistryEntry, package: ModelPackage) -> dict[str, Any]:
    manifest = package.manifest
    return {
        **entry.as_json(),
        "feature_spec": manifest["feature_spec"],
        "threshold": manifest["threshold"],
        "files": manifest["files"],
        "device": manifest["device"],
        "golden_vectors": len(manifest["golden"]),
        "training_data": manifest["training_data"],
    }


@models_app.command("show")
def models_show(
    model_id: ModelIdArgument,
    version: Annotated[
        int | None,
        typer.Argument(min=1, help="Model version (default: the latest).", show_default=False),
    ] = None,
    public: PublicOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one registered package: status, feature spec, sizes, metrics, training data.

    The package is verified first; a package that fails is not shown (see
    `vibewatch models verify`).
    """
    key = _public_key(public, config)
    with _registry(config, key) as registry:
        entry = _known(registry, model_id, version)
        try:
            package = registry.load(entry.model_id, entry.version)
        except RegistryError as exc:
            fail(str(exc), 1)
    summary = _summary(entry, package)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    spec = summary["feature_spec"]
    files = summary["files"]
    decided = f" since {entry.decided_at:%Y-%m-%d %H:%M:%SZ}" if entry.decided_at else ""
    lines = [
        f"model {entry.model_id} version {entry.version}: {entry.status}{decided}",
        f"  reason         {entry.reason or '-'}",
        f"  registered     {entry.registered_at:%Y-%m-%d %H:%M:%SZ}",
        f"  path           {entry.path}",
        f"  feature spec   {spec['id']} ({spec['sample_rate_hz']} Hz, window {spec['window']}, "
        f"{len(spec['band_bins']) - 1} bands)",
        f"  threshold      {summary['threshold']}",
        "  files          "
        + ", ".join(f"{name} {info['bytes']} bytes" for name, info in sorted(files.items())),
        f"  device needs   flash {summary['device']['flash_bytes']} bytes, "
        f"RAM {summary['device']['ram_bytes']} bytes",
        f"  golden         {summary['golden_vectors']} vectors",
        f"  training data  {json.dumps(summary['training_data'], sort_keys=True)}",
        "  metrics",
        *(f"    {name}: {json.dumps(value)}" for name, value in sorted(entry.metrics.items())),
    ]
    typer.echo("\n".join(lines))


@models_app.command("verify")
def models_verify(
    target: Annotated[
        str,
        typer.Argument(
            metavar="PACKAGE_DIR | MODEL_ID",
            help="A package directory (or the OUT directory of `vibewatch train` holding "
            "one), or a registered model id followed by its version.",
            show_default=False,
        ),
    ],
    version: Annotated[
        int | None,
        typer.Argument(min=1, help="Version of a registered model.", show_default=False),
    ] = None,
    public: PublicOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Check a package's signature, every hash, the blob and its golden vectors.

    Prints OK, or every problem found (exit code 1). A registered package
    must also be the very one that was registered.
    """
    model_id: str | None = None
    if version is None:
        try:
            path = package_dir(Path(target))
        except PackageError as exc:
            fail(
                f"{target} is not a package directory (for a registered package, give "
                f"MODEL_ID VERSION): {'; '.join(exc.problems)}",
                2,
            )
        key_path = public_key_path(public, config)
        check_key_for(path, key_path)
        key = _public_key(key_path, config)
        try:
            package = verify_package(path, key)
            model_id, version, problems = package.model_id, package.version, []
        except PackageError as exc:
            problems = exc.problems
    else:
        key = _public_key(public, config)
        with _registry(config, key) as registry:
            entry = _known(registry, target, version)
            model_id, path = entry.model_id, entry.path
            problems = registry.verify(entry.model_id, entry.version)
    if as_json:
        report = {
            "ok": not problems,
            "path": str(path),
            "model_id": model_id,
            "version": version,
            "problems": problems,
        }
        typer.echo(json.dumps(report, indent=2))
    elif problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        typer.echo(f"FAILED {path}: {count}")
        for problem in problems:
            typer.echo(f"  - {problem}")
    else:
        typer.echo(f"OK {path}: model {model_id} version {version}, signed by {fingerprint(key)}")
    if problems:
        raise typer.Exit(1)


@models_app.command("export")
def models_export(
    model_id: ModelIdArgument,
    version: VersionArgument,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="The package directory to create (missing or empty).", show_default=False
        ),
    ],
    public: PublicOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy a registered package, verified, to a directory (for OTA or for the factory image)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "directory already exists and is not empty" if out.is_dir() else "is a file"
        fail(f"cannot export to {out}: the {what}; give a missing or empty directory", 2)
    key = _public_key(public, config)
    with _registry(config, key) as registry:
        entry = _known(registry, model_id, version)
        try:
            registry.export(entry.model_id, entry.version, out)
        except RegistryError as exc:
            fail(str(exc), 1)
        except OSError as exc:
            fail(f"cannot write {out}: {exc}", 1)
    typer.echo(f"exported model {model_id} version {version} to {out}")


@models_app.command("sign-rollback")
def models_sign_rollback(
    model_id: ModelIdArgument,
    version: VersionArgument,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="The Ed25519 private key that signed the package \\[default: train.signing_key].",
            show_default=False,
        ),
    ] = None,
    public: PublicOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Sign the statement that lets devices install a registered version as a rollback
    (a version not above the one they run), and keep it in the registry.

    A rollback of a fleet to this version needs it; like the package, it is signed with
    the private key here, never by the rollout controller.
    """
    cfg = load(config)
    key = load_signing_key(signing_key or cfg.train.signing_key, given=signing_key is not None)
    with _registry(config, _public_key(public, config)) as registry:
        entry = _known(registry, model_id, version)
        try:
            package = registry.load(entry.model_id, entry.version)
            path = registry.add_rollback(entry.model_id, entry.version, sign_rollback(package, key))
        except RegistryError as exc:
            fail(str(exc), 1)
        except OSError as exc:
            fail(f"cannot write the rollback statement: {exc.strerror or exc}", 1)
    if as_json:
        report = {"model_id": model_id, "version": version, "path": str(path)}
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(
            f"signed the rollback to model {model_id} version {version} with "
            f"{fingerprint(key.public_key())}: {path}"
        )
