"""The signed model package: one directory, four files, checked as a whole.

A package directory holds exactly:

* ``model.tflite`` — the full-integer int8 TFLite model;
* ``model.vwm`` — the blob the firmware engine runs;
* ``manifest.json`` — what the package is (see below), in canonical JSON;
* ``manifest.sig`` — the raw 64-byte Ed25519 signature of the exact bytes of
  ``manifest.json``;
* ``device.sig`` — the raw 64-byte Ed25519 signature, by the same key, of the install
  statement the firmware verifies before it installs the blob
  (:func:`~vibewatch.protocol.signed_model_text` of the blob's model id, version, size
  and SHA-256: :meth:`ModelPackage.install_text`). It is made when the package is
  signed, so whatever ships the blob to devices (the rollout controller) never needs
  the private key.

A rollback, installing a version that is not above a device's, needs a statement of its
own (the install statement with the ``rollback`` line), signed offline as well:
:func:`sign_rollback`, checked by :func:`rollback_problems`.

The manifest is a JSON object with the keys the producer supplies — ``model_id``,
``version`` (>= 1), ``threshold``, ``feature_spec`` and ``device`` (equal to the blob's:
:func:`blob_fields`), ``metrics``, ``training_data``, ``golden`` (at least
:data:`MIN_GOLDEN` vectors ``{"input": [int8...], "output": [int8...], "score": float}``
that the C engine reproduces bit for bit: :func:`golden_vectors`) and any others
(``architecture`` ...) — plus two that :func:`write_package` adds: ``format``
(:data:`FORMAT`) and ``files`` (bytes and SHA-256 of the two model files). Since the
signature covers the manifest and the manifest covers the files, one signature check
and two hashes vouch for every byte.

Canonical JSON (:func:`canonical_json`: sorted keys, indent 2, ASCII, no NaN, newline
at the end) makes the same inputs give the same bytes, and Ed25519 signatures are
deterministic, so rebuilding a package from the same inputs and key gives identical
files. :func:`verify_package` checks everything and reports every problem at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vibewatch.edge import Model
from vibewatch.errors import EdgeError, PackageError
from vibewatch.models.keys import fingerprint
from vibewatch.protocol import signed_model_text

__all__ = [
    "DEVICE_SIGNATURE",
    "FORMAT",
    "MANIFEST",
    "MIN_GOLDEN",
    "PACKAGE_FILES",
    "SIGNATURE",
    "TFLITE",
    "VWM",
    "ModelPackage",
    "blob_fields",
    "canonical_json",
    "golden_vectors",
    "rollback_problems",
    "sign_rollback",
    "verify_package",
    "write_package",
]

FORMAT: Final = "vibewatch-model-package/2"
"""The ``format`` of a manifest this module writes and reads."""
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
DEVICE_SIGNATURE: Final = "device.sig"
TFLITE: Final = "model.tflite"
VWM: Final = "model.vwm"
PACKAGE_FILES: Final = (MANIFEST, SIGNATURE, DEVICE_SIGNATURE, TFLITE, VWM)
"""Every file of a package; a package holds these and nothing else."""
MIN_GOLDEN: Final = 8
"""Fewest golden vectors a manifest may hold."""

_HASHED: Final = (TFLITE, VWM)
_ADDED_KEYS: Final = ("format", "files")
_PRODUCER_KEYS: Final = (
    "model_id",
    "version",
    "threshold",
    "feature_spec",
    "device",
    "metrics",
    "training_data",
    "golden",
)
_SIGNATURE_BYTES: Final = 64


def canonical_json(value: object) -> bytes:
    """The one byte form of a manifest: sorted keys, indent 2, ASCII, newline at the end.

    Raises:
        TypeError: ``value`` holds something JSON cannot represent (a NumPy scalar...).
        ValueError: ``value`` holds NaN or an infinity.
    """
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode("ascii")


def blob_fields(model: Model) -> dict[str, Any]:
    """The manifest fields that must equal a ``.vwm`` blob's own.

    ``device`` is what a device must have for the model: ``flash_bytes`` (the blob's
    size) and ``ram_bytes`` (the engine's working memory for one inference).
    """
    spec = model.spec
    return {
        "model_id": model.model_id,
        "version": model.version,
        "threshold": model.threshold,
        "feature_spec": {
            "id": spec.spec_id,
            "sample_rate_hz": spec.sample_rate_hz,
            "window": spec.window,
            "band_bins": list(spec.band_bins),
        },
        "device": {"flash_bytes": model.blob_bytes, "ram_bytes": model.ram_bytes},
    }


def golden_vectors(model: Model, inputs: npt.ArrayLike) -> list[dict[str, Any]]:
    """The manifest's ``golden`` entries for quantised ``inputs`` (int8 ``[k, n_features]``).

    Outputs and scores come from the C engine; a float32 score is exact as a JSON number.
    """
    rows = np.asarray(inputs, dtype=np.int8).reshape(-1, model.n_features)
    outputs, scores = model.run(rows)
    return [
        {"input": row.tolist(), "output": out.tolist(), "score": float(score)}
        for row, out, score in zip(rows, outputs, scores, strict=True)
    ]


@dataclass(frozen=True)
class ModelPackage:
    """A package whose every file has been verified (made by :func:`verify_package`).

    Attributes:
        path: The package directory.
        manifest: The parsed ``manifest.json``.
        tflite: The bytes of ``model.tflite``.
        vwm: The bytes of ``model.vwm``.
        signature: The bytes of ``manifest.sig``.
        device_signature: The bytes of ``device.sig``.
    """

    path: Path
    manifest: dict[str, Any]
    tflite: bytes
    vwm: bytes
    signature: bytes
    device_signature: bytes

    @property
    def model_id(self) -> str:
        """The model id of the manifest (and of the blob)."""
        return str(self.manifest["model_id"])

    @property
    def version(self) -> int:
        """The version of the manifest (and of the blob)."""
        return int(self.manifest["version"])

    @property
    def manifest_bytes(self) -> bytes:
        """The exact bytes of ``manifest.json`` (canonical, so the parsed form gives them)."""
        return canonical_json(self.manifest)

    @property
    def manifest_sha256(self) -> str:
        """Lowercase hex SHA-256 of ``manifest.json``: identifies the package."""
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    def install_text(self, *, rollback: bool = False) -> bytes:
        """The statement a device verifies before installing the blob: ``device.sig``
        signs it; with ``rollback``, the statement of a rollback (:func:`sign_rollback`)."""
        return _install_text(self.model_id, self.version, self.vwm, rollback=rollback)

    def save(self, directory: Path, *, overwrite: bool = False) -> ModelPackage:
        """Write the files to ``directory`` atomically; the result's ``path`` is it.

        Raises:
            PackageError: ``directory`` exists, is not empty and ``overwrite`` is false.
            OSError: The files cannot be written.
        """
        directory = Path(directory)
        _write_files(
            directory,
            {
                MANIFEST: self.manifest_bytes,
                SIGNATURE: self.signature,
                DEVICE_SIGNATURE: self.device_signature,
                TFLITE: self.tflite,
                VWM: self.vwm,
            },
            overwrite=overwrite,
        )
        return dataclasses.replace(self, path=directory)


def _install_text(model_id: str, version: int, vwm: bytes, *, rollback: bool) -> bytes:
    sha256 = hashlib.sha256(vwm).hexdigest()
    return signed_model_text(model_id, version, len(vwm), sha256, rollback=rollback)


def sign_rollback(package: ModelPackage, private_key: Ed25519PrivateKey) -> bytes:
    """The signed statement that lets devices install ``package`` as a rollback (a version
    not above theirs): the Ed25519 signature of its install statement with ``rollback``.

    Made offline with the signing key, like the package itself.
    """
    return private_key.sign(package.install_text(rollback=True))


def rollback_problems(
    package: ModelPackage, signature: bytes, public_key: Ed25519PublicKey
) -> list[str]:
    """What is wrong with a rollback statement of ``package`` (empty when it is valid)."""
    return _signature_problems(
        "the rollback statement",
        f"the rollback of {package.model_id} version {package.version}",
        package.install_text(rollback=True),
        signature,
        public_key,
    )


# --- writing ------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_files(directory: Path, files: Mapping[str, bytes], *, overwrite: bool) -> None:
    """Create ``directory`` holding ``files``, all at once or not at all.

    The files are written and fsync'd in a fresh sibling directory that is then renamed
    into place, so a reader (or a crash) sees no package or the whole package.
    """
    exists = directory.is_symlink() or directory.exists()
    if exists and not overwrite and (not directory.is_dir() or any(directory.iterdir())):
        raise PackageError(str(directory), ["the directory already exists and is not empty"])
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=parent))
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the package from other readers
        _fsync(staging)
        try:
            # Replaces a missing or empty directory in one step.
            staging.rename(directory)
        except OSError:
            if not overwrite:
                raise
            # A full directory cannot be renamed over: move it aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=parent))
            directory.rename(old / "package")
            staging.rename(directory)
            shutil.rmtree(old)
        _fsync(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _file_entry(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_package(
    directory: Path,
    *,
    tflite: bytes,
    vwm: bytes,
    manifest: Mapping[str, Any],
    private_key: Ed25519PrivateKey,
    overwrite: bool = False,
) -> ModelPackage:
    """Check, sign and write a model package.

    Before anything is written, the manifest is checked as :func:`verify_package` would
    check it: required keys, fields equal to the blob's, golden vectors reproduced by
    the C engine, the blob's own golden check.

    Args:
        directory: The package directory to create (missing or empty).
        tflite: The int8 ``.tflite`` model.
        vwm: The ``.vwm`` blob converted from it.
        manifest: The producer's keys (module docstring); not ``format`` or ``files``,
            which are added here. Plain JSON types only (``float``, not ``np.float32``).
        private_key: The signing key.
        overwrite: Replace an existing package directory.

    Returns:
        The package as written, verified with the key's public half.

    Raises:
        PackageError: The manifest is incomplete, does not match the blob, or cannot be
            written as JSON (every problem listed); or ``directory`` is not empty.
        OSError: The files cannot be written.
    """
    directory = Path(directory)
    problems = [
        f"manifest: key {key!r} is added by write_package" for key in _ADDED_KEYS if key in manifest
    ]
    full = {
        **manifest,
        "format": FORMAT,
        "files": {TFLITE: _file_entry(tflite), VWM: _file_entry(vwm)},
    }
    problems += _manifest_problems(full, {TFLITE: tflite, VWM: vwm})
    text = b""
    try:
        text = canonical_json(full)
    except (TypeError, ValueError) as exc:
        problems.append(f"manifest: cannot be written as JSON: {exc}")
    if problems:
        raise PackageError(str(directory), problems)
    install = _install_text(full["model_id"], full["version"], vwm, rollback=False)
    files = {
        MANIFEST: text,
        SIGNATURE: private_key.sign(text),
        DEVICE_SIGNATURE: private_key.sign(install),
        TFLITE: tflite,
        VWM: vwm,
    }
    _write_files(directory, files, overwrite=overwrite)
    return verify_package(directory, private_key.public_key())


# --- checking -------------------------------------------------------------------


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value) if _is_json(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_json(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_int8_list(value: object) -> bool:
    # type() rather than isinstance(): a bool is not an int8.
    return isinstance(value, list) and all(type(v) is int and -128 <= v <= 127 for v in value)


def _file_entry_ok(entry: object) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(entry, dict)
        and entry.keys() == {"bytes", "sha256"}
        and _is_int(entry["bytes"])
        and isinstance(entry["sha256"], str)
    )


def _golden_entry_ok(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and entry.keys() == {"input", "output", "score"}
        and _is_int8_list(entry["input"])
        and _is_int8_list(entry["output"])
        and _is_number(entry["score"])
    )


def _schema_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Missing keys and values of the wrong type or range."""
    problems = [
        f"manifest: missing key {key!r}"
        for key in (*_PRODUCER_KEYS, *_ADDED_KEYS)
        if key not in manifest
    ]

    def bad(key: str, what: str) -> None:
        problems.append(f"manifest: {key} must be {what}, got {_short(manifest[key])}")

    version = manifest.get("version")
    checks: tuple[tuple[str, bool, str], ...] = (
        ("format", manifest.get("format") == FORMAT, json.dumps(FORMAT)),
        ("model_id", isinstance(manifest.get("model_id"), str), "a string"),
        (
            "version",
            _is_int(version) and version >= 1,
            "an integer >= 1",
        ),
        ("threshold", _is_number(manifest.get("threshold")), "a number"),
        ("feature_spec", isinstance(manifest.get("feature_spec"), dict), "an object"),
        ("device", isinstance(manifest.get("device"), dict), "an object"),
        ("metrics", isinstance(manifest.get("metrics"), dict), "an object"),
        ("training_data", isinstance(manifest.get("training_data"), dict), "an object"),
    )
    for key, ok, what in checks:
        if key in manifest and not ok:
            bad(key, what)
    files = manifest.get("files")
    if "files" in manifest and not (
        isinstance(files, dict)
        and files.keys() == set(_HASHED)
        and all(_file_entry_ok(e) for e in files.values())
    ):
        bad("files", f'{{"{TFLITE}": {{"bytes", "sha256"}}, "{VWM}": {{...}}}} and nothing else')
    golden = manifest.get("golden")
    if "golden" in manifest:
        if not isinstance(golden, list):
            bad("golden", "a list")
        else:
            if len(golden) < MIN_GOLDEN:
                problems.append(
                    f"manifest: golden holds {len(golden)} vectors, "
                    f"at least {MIN_GOLDEN} are needed"
                )
            problems += [
                f'manifest: golden[{i}] must be {{"input": [int8...], "output": [int8...], '
                f'"score": number}}, got {_short(entry)}'
                for i, entry in enumerate(golden)
                if not _golden_entry_ok(entry)
            ]
    return problems


def _hash_problems(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    """Each present model file against its size and SHA-256 in the manifest."""
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return []
    problems: list[str] = []
    for name in _HASHED:
        entry = listed.get(name)
        if name not in files or not _file_entry_ok(entry):
            continue  # missing files and malformed entries are reported on their own
        data = files[name]
        if entry["bytes"] != len(data):
            problems.append(f"{name}: {len(data)} bytes, the manifest says {entry['bytes']}")
        digest = hashlib.sha256(data).hexdigest()
        if entry["sha256"] != digest:
            problems.append(f"{name}: sha256 {digest}, the manifest says {entry['sha256']}")
    return problems


def _blob_problems(manifest: Mapping[str, Any], blob: bytes) -> list[str]:
    """The blob through the firmware's parser, against the manifest, and its golden checks."""
    try:
        model = Model(blob)
    except EdgeError as exc:
        return [f"{VWM} is refused by the model parser: {exc}"]
    problems = [
        f"manifest: {key} is {_short(manifest[key])}, {VWM} has {_short(value)}"
        for key, value in blob_fields(model).items()
        if key in manifest and manifest[key] != value
    ]
    golden = manifest.get("golden")
    if isinstance(golden, list):
        problems += _golden_problems(model, golden)
    try:
        model.check_golden()
    except EdgeError as exc:
        problems.append(f"{VWM}: its own golden vectors are not reproduced by the C engine: {exc}")
    return problems


def _golden_problems(model: Model, golden: list[Any]) -> list[str]:
    """Well-formed golden entries against the C engine, output bytes and score bits."""
    n = model.n_features
    problems: list[str] = []
    usable: list[tuple[int, dict[str, Any]]] = []
    for i, entry in enumerate(golden):
        if not _golden_entry_ok(entry):
            continue  # reported by the schema check
        if len(entry["input"]) != n or len(entry["output"]) != n:
            problems.append(
                f"manifest: golden[{i}] has {len(entry['input'])} inputs and "
                f"{len(entry['output'])} outputs, the model has {n} features"
            )
            continue
        usable.append((i, entry))
    if not usable:
        return problems
    expected = golden_vectors(model, [entry["input"] for _, entry in usable])
    for (i, entry), want in zip(usable, expected, strict=True):
        if entry["output"] != want["output"]:
            problems.append(
                f"manifest: golden[{i}] output {_short(entry['output'])} differs from "
                f"the C engine's {_short(want['output'])}"
            )
        # Compared as float64 bit patterns: the score must be the engine's float32 exactly.
        if np.float64(entry["score"]).tobytes() != np.float64(want["score"]).tobytes():
            problems.append(
                f"manifest: golden[{i}] score {entry['score']!r} differs from "
                f"the C engine's {want['score']!r}"
            )
    return problems


def _manifest_problems(manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    problems = _schema_problems(manifest) + _hash_problems(manifest, files)
    if VWM in files:
        problems += _blob_problems(manifest, files[VWM])
    return problems


def _read_regular(path: Path) -> bytes | str:
    """The bytes of a regular file, or why it cannot be one of a package's files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return f"missing file {path.name}"
    except OSError as exc:
        if path.is_symlink():
            return f"{path.name} is a symbolic link, not a regular file"
        return f"cannot read {path.name}: {exc.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"{path.name} is not a regular file"
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _parse_manifest(text: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{MANIFEST} is not valid JSON: {exc}"]
    if not isinstance(manifest, dict):
        return None, [f"{MANIFEST} is not a JSON object"]
    try:
        canonical = canonical_json(manifest) == text
    except ValueError:  # NaN or Infinity, which json.loads accepts
        canonical = False
    if not canonical:
        return manifest, [
            f"{MANIFEST} is not canonical JSON (sorted keys, indent 2, ASCII, no NaN, "
            "newline at the end)"
        ]
    return manifest, []


def verify_package(directory: Path, public_key: Ed25519PublicKey) -> ModelPackage:
    """Check every byte of a package against its signed manifest and the C engine.

    Checked: exactly the five files, each a regular file; the signature of
    ``manifest.json`` under ``public_key``; ``device.sig``, the signature of the install
    statement of the blob under ``public_key``; the manifest is canonical JSON with every
    required key; each model file's size and SHA-256; the blob passes the firmware's
    parser; the manifest's ``model_id``, ``version``, ``threshold``, ``feature_spec``
    and ``device`` equal the blob's; every golden vector is reproduced by the C engine
    bit for bit; the blob's own golden vectors are reproduced.

    Returns:
        The verified package.

    Raises:
        PackageError: Anything fails; ``problems`` lists every failure, one per line.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PackageError(str(directory), [f"{directory} is not a directory"])
    problems = [
        f"unexpected file {entry.name}"
        for entry in sorted(directory.iterdir())
        if entry.name not in PACKAGE_FILES
    ]
    files: dict[str, bytes] = {}
    for name in PACKAGE_FILES:
        read = _read_regular(directory / name)
        if isinstance(read, str):
            problems.append(read)
        else:
            files[name] = read
    if MANIFEST in files and SIGNATURE in files:
        problems += _signature_problems(
            SIGNATURE, MANIFEST, files[MANIFEST], files[SIGNATURE], public_key
        )
    manifest: dict[str, Any] | None = None
    if MANIFEST in files:
        manifest, parse_problems = _parse_manifest(files[MANIFEST])
        problems += parse_problems
    if manifest is not None:
        manifest_problems = _manifest_problems(manifest, files)
        problems += manifest_problems
        if not manifest_problems and DEVICE_SIGNATURE in files and VWM in files:
            install = _install_text(
                manifest["model_id"], manifest["version"], files[VWM], rollback=False
            )
            problems += _signature_problems(
                DEVICE_SIGNATURE,
                "the install statement of model.vwm",
                install,
                files[DEVICE_SIGNATURE],
                public_key,
            )
    if problems or manifest is None:
        raise PackageError(str(directory), problems)
    return ModelPackage(
        directory,
        manifest,
        files[TFLITE],
        files[VWM],
        files[SIGNATURE],
        files[DEVICE_SIGNATURE],
    )


def _signature_problems(
    name: str, what: str, text: bytes, signature: bytes, public_key: Ed25519PublicKey
) -> list[str]:
    """Problems of ``signature`` (called ``name``) of ``text`` (called ``what``)."""
    if len(signature) != _SIGNATURE_BYTES:
        return [
            f"{name} holds {len(signature)} bytes, an Ed25519 signature holds {_SIGNATURE_BYTES}"
        ]
    try:
        public_key.verify(signature, text)
    except InvalidSignature:
        return [f"{name} is not a valid signature of {what} by the key {fingerprint(public_key)}"]
    return []
