"""Signing keys: file modes, refusals, the C header, and `vibewatch keys`."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from vibewatch.errors import KeyFileError
from vibewatch.models.cli import keys_app
from vibewatch.models.keys import (
    fingerprint,
    generate_keypair,
    load_private_key,
    load_public_key,
    public_key_c_header,
    raw_public_key,
)

runner = CliRunner()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """A umask that hides nothing, so only the code decides who can read the key."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("permissive_umask")
def test_generated_private_key_is_0600_even_under_umask_0(tmp_path: Path) -> None:
    private, public = tmp_path / "keys" / "signing.key", tmp_path / "keys" / "signing.pub"
    key = generate_keypair(private, public)
    assert mode(private) == 0o600
    assert mode(public) == 0o644
    assert mode(private.parent) == 0o700
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert raw_public_key(load_private_key(private).public_key()) == raw_public_key(key)
    assert raw_public_key(load_public_key(public)) == raw_public_key(key)
    assert sorted(p.name for p in private.parent.iterdir()) == ["signing.key", "signing.pub"]


def test_existing_keys_are_not_overwritten(tmp_path: Path) -> None:
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    first = generate_keypair(private, public)
    before = private.read_bytes(), public.read_bytes()
    with pytest.raises(KeyFileError) as caught:
        generate_keypair(private, public)
    assert str(caught.value) == f"{private} already exists; pass overwrite (--force) to replace it"
    assert (private.read_bytes(), public.read_bytes()) == before
    second = generate_keypair(private, public, overwrite=True)
    assert raw_public_key(second) != raw_public_key(first)
    assert raw_public_key(load_private_key(private).public_key()) == raw_public_key(second)
    assert mode(private) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.pub"]


def test_an_existing_public_key_stops_before_the_private_one_is_written(tmp_path: Path) -> None:
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    public.write_text("keep me")
    with pytest.raises(KeyFileError, match=r"k\.pub already exists"):
        generate_keypair(private, public)
    assert not private.exists()
    assert public.read_text() == "keep me"


def test_one_path_for_both_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot both be"):
        generate_keypair(tmp_path / "k", tmp_path / "k")


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o660])
def test_a_private_key_others_can_read_is_refused(tmp_path: Path, bits: int) -> None:
    private = tmp_path / "k.key"
    generate_keypair(private, tmp_path / "k.pub")
    private.chmod(bits)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(private)
    assert str(caught.value) == (
        f"private key {private} has mode {bits:04o}: group or others can read it; "
        f"run chmod 600 {private}"
    )
    private.chmod(0o400)
    load_private_key(private)


def test_keys_that_are_not_ed25519_are_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "ec.key", tmp_path / "ec.pub"
    private.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyFileError, match=r"ec\.key holds a .*, not an Ed25519 private key"):
        load_private_key(private)
    with pytest.raises(KeyFileError, match=r"ec\.pub holds a .*, not an Ed25519 public key"):
        load_public_key(public)


def test_unusable_key_files_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(KeyFileError) as caught:
        load_private_key(missing)
    assert str(caught.value) == f"private key {missing} does not exist"
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(garbage)
    assert str(caught.value) == f"{garbage} does not hold a PEM private key"
    with pytest.raises(KeyFileError) as caught:
        load_public_key(garbage)
    assert str(caught.value) == f"{garbage} does not hold a PEM public key"
    with pytest.raises(KeyFileError) as caught:
        load_public_key(tmp_path)
    assert str(caught.value) == f"public key {tmp_path} is not a regular file"
    encrypted = tmp_path / "encrypted.key"
    generate_keypair(tmp_path / "plain.key", tmp_path / "plain.pub")
    encrypted.write_bytes(
        load_private_key(tmp_path / "plain.key").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    encrypted.chmod(0o600)
    with pytest.raises(KeyFileError, match="is encrypted"):
        load_private_key(encrypted)


def test_c_header_holds_the_raw_key(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    header = public_key_c_header(key)
    assert "#ifndef VW_MODEL_PUBLIC_KEY_H\n#define VW_MODEL_PUBLIC_KEY_H\n" in header
    assert header.endswith("#endif /* VW_MODEL_PUBLIC_KEY_H */\n")
    assert fingerprint(key) in header
    array = re.search(r"static const uint8_t VW_MODEL_PUBLIC_KEY\[32\] = \{(.*?)\};", header, re.S)
    assert array is not None
    values = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", array.group(1)))
    assert values == raw_public_key(key)
    assert "PRIVATE" not in header


def test_c_header_compiles_and_gives_the_key_back(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    (tmp_path / "fleet_key.h").write_text(public_key_c_header(key, name="fleet_key"))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "fleet_key.h"\n#include "fleet_key.h"\n'
        "int main(void) {\n"
        '    for (size_t i = 0; i < sizeof fleet_key; i++) printf("%02x", fleet_key[i]);\n'
        "    return 0;\n}\n"
    )
    exe = tmp_path / "main"
    subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", exe, tmp_path / "main.c"],
        check=True,
    )
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    assert out == raw_public_key(key).hex()


def test_c_header_name_must_be_a_c_identifier(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    with pytest.raises(ValueError, match="'2key' is not a C identifier"):
        public_key_c_header(key, name="2key")


def test_fingerprint_is_the_sha256_of_the_raw_key(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    assert fingerprint(key) == "sha256:" + hashlib.sha256(raw_public_key(key)).hexdigest()


# --- the CLI ----------------------------------------------------------------------


def test_cli_generate_uses_the_configured_paths_and_never_prints_the_key(tmp_path: Path) -> None:
    env = {"VIBEWATCH_DATA_HOME": str(tmp_path / "home")}
    result = runner.invoke(keys_app, ["generate"], env=env)
    assert result.exit_code == 0, result.output
    private = tmp_path / "home" / "keys" / "model-signing.key"
    public = tmp_path / "home" / "keys" / "model-signing.pub"
    key = load_public_key(public)
    assert result.output == (
        f"private key: {private} (mode 0600, keep it secret)\n"
        f"public key:  {public}\n"
        f"fingerprint: {fingerprint(key)}\n"
    )
    assert mode(private) == 0o600
    secret_lines = private.read_text().splitlines()[1:-1]
    assert all(line not in result.output for line in secret_lines)

    again = runner.invoke(keys_app, ["generate"], env=env)
    assert again.exit_code == 1
    assert f"error: {private} already exists" in again.output
    forced = runner.invoke(keys_app, ["generate", "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert raw_public_key(load_public_key(public)) != raw_public_key(key)


def test_cli_generate_takes_explicit_paths(tmp_path: Path) -> None:
    result = runner.invoke(
        keys_app,
        ["generate", "--private", str(tmp_path / "a.key"), "--public", str(tmp_path / "a.pub")],
        env={"VIBEWATCH_DATA_HOME": str(tmp_path / "unused")},
    )
    assert result.exit_code == 0, result.output
    assert load_private_key(tmp_path / "a.key")
    assert not (tmp_path / "unused").exists()


def test_cli_export_c(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    env = {"VIBEWATCH_TRAIN_VERIFY_KEY": str(tmp_path / "k.pub")}
    result = runner.invoke(keys_app, ["export-c"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == public_key_c_header(key)

    out = tmp_path / "key.h"
    result = runner.invoke(
        keys_app,
        ["export-c", "--public", str(tmp_path / "k.pub"), "--out", str(out), "--name", "KEY"],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == public_key_c_header(key, name="KEY")
    assert result.stdout == ""

    bad = runner.invoke(keys_app, ["export-c", "--name", "a-b"], env=env)
    assert bad.exit_code == 2
    assert "error: --name: 'a-b' is not a C identifier" in bad.output
    missing = runner.invoke(keys_app, ["export-c", "--public", str(tmp_path / "none.pub")])
    assert missing.exit_code == 2
    assert f"error: public key {tmp_path / 'none.pub'} does not exist" in missing.output


def test_cli_invalid_configuration_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(keys_app, ["generate"], env={"VIBEWATCH_TRAIN_NOPE": "1"})
    assert result.exit_code == 2
    assert "error: invalid configuration" in result.output
