"""Ed25519 keys that sign model packages, and the public key as a C header for firmware.

The private key is a PKCS #8 PEM file that only its owner may read (mode 0600): it is
created with that mode, never wider even for an instant, and :func:`load_private_key`
refuses a file that group or others can read, as ssh does. The public key is a
SubjectPublicKeyInfo PEM file; devices get its 32 raw bytes compiled in
(:func:`public_key_c_header`). Nothing here logs or prints a private key.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vibewatch.errors import KeyFileError

__all__ = [
    "fingerprint",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "public_key_c_header",
    "raw_public_key",
]

_C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXISTS = "{path} already exists; pass overwrite (--force) to replace it"


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of ``public_key`` (RFC 8032 encoding), as the firmware holds it."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``sha256:`` and the lowercase hex SHA-256 of the raw public key: names a key safely."""
    return "sha256:" + hashlib.sha256(raw_public_key(public_key)).hexdigest()


def _write_new(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` through a fresh file created with ``mode``.

    The temporary file is created by ``O_CREAT | O_EXCL`` with its final mode, so the
    content is never readable by anyone else, not even between create and chmod. It is
    then linked into place (which fails if ``path`` exists) or, with ``overwrite``,
    renamed over it; either way a reader sees the old file or the complete new one.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError as exc:
        raise KeyFileError(_EXISTS.format(path=path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def generate_keypair(
    private_path: Path, public_path: Path, *, overwrite: bool = False
) -> Ed25519PublicKey:
    """Create a new Ed25519 key pair in two PEM files.

    Missing parent directories are created (the private key's with mode 0700).

    Args:
        private_path: Where the PKCS #8 private key goes; created with mode 0600.
        public_path: Where the SubjectPublicKeyInfo public key goes (mode 0644).
        overwrite: Replace existing files; without it, an existing file is refused
            before anything is written.

    Returns:
        The new public key.

    Raises:
        KeyFileError: A file exists and ``overwrite`` is false, the two paths are the
            same, or a file cannot be written.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.absolute() == public_path.absolute():
        raise KeyFileError(f"the private and the public key cannot both be {private_path}")
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists() or path.is_symlink():
                raise KeyFileError(_EXISTS.format(path=path))
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(private_path, private_pem, 0o600, overwrite=overwrite)
        public_path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(public_path, public_pem, 0o644, overwrite=overwrite)
    except OSError as exc:
        raise KeyFileError(f"cannot write the key pair: {exc}") from exc
    return key.public_key()


def _read(path: Path, what: str) -> tuple[bytes, int]:
    """The bytes and the permission bits of a key file, both from one open file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise KeyFileError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"{what} {path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(), stat.S_IMODE(mode)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from an unencrypted PKCS #8 PEM file.

    Raises:
        KeyFileError: The file is missing or unreadable, group or others may read it
            (its mode is named), or it does not hold an unencrypted Ed25519 private key.
    """
    data, mode = _read(Path(path), "private key")
    # Checked on the open file, so a chmod between check and read changes nothing.
    if mode & 0o077:
        raise KeyFileError(
            f"private key {path} has mode {mode:04o}: group or others can read it; "
            f"run chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's way of saying "encrypted"
        raise KeyFileError(
            f"private key {path} is encrypted; an unencrypted key is needed"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} does not hold a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a SubjectPublicKeyInfo PEM file.

    Raises:
        KeyFileError: The file is missing or unreadable or not an Ed25519 public key.
    """
    data, _ = _read(Path(path), "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} does not hold a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def public_key_c_header(public_key: Ed25519PublicKey, *, name: str = "VW_MODEL_PUBLIC_KEY") -> str:
    """A C header that defines the raw public key as ``static const uint8_t NAME[32]``.

    Args:
        public_key: The key firmware checks package signatures with.
        name: The C identifier of the array; the include guard is ``NAME_H`` upper-cased.

    Returns:
        The header text, ending in a newline.

    Raises:
        ValueError: ``name`` is not a C identifier.
    """
    if not _C_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a C identifier")
    raw = raw_public_key(public_key)
    rows = [", ".join(f"0x{b:02x}" for b in raw[i : i + 8]) for i in range(0, len(raw), 8)]
    guard = f"{name.upper()}_H"
    body = ",\n".join(f"    {row}" for row in rows)
    return (
        "/* Ed25519 public key that verifies vibewatch model packages.\n"
        f" * Key fingerprint (SHA-256 of the 32 bytes): {fingerprint(public_key)}\n"
        " * Generated by `vibewatch keys export-c`: regenerate, do not edit. */\n"
        f"#ifndef {guard}\n"
        f"#define {guard}\n"
        "\n"
        "#include <stdint.h>\n"
        "\n"
        f"static const uint8_t {name}[{len(raw)}] = {{\n"
        f"{body}\n"
        "};\n"
        "\n"
        f"#endif /* {guard} */\n"
    )
