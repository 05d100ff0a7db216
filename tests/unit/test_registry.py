"""The state database, the model registry and `vibewatch models`."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from vibewatch import state
from vibewatch.errors import RegistryError
from vibewatch.models.cli import models_app
from vibewatch.models.keys import fingerprint, generate_keypair, load_private_key
from vibewatch.models.package import PACKAGE_FILES, canonical_json, sign_rollback, verify_package
from vibewatch.models.registry import Registry
from vibewatch.state import MIGRATIONS, StateError, open_state_db
from vibewatch.testing.models import build_package, resign

runner = CliRunner()


# --- the state database -------------------------------------------------------------


def test_state_db_is_created_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    db = open_state_db(path)
    assert path.is_file()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == state.BUSY_TIMEOUT_MS
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"models", "model_versions"} <= tables
    db.close()


def test_migrations_run_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_state_db(path)
    schema = db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    db.execute(
        "INSERT INTO models (model_id, version, status, path, manifest_sha256, metrics, "
        "registered_at) VALUES ('m', 1, 'candidate', '/x', '', '{}', '')"
    )
    db.close()
    again = open_state_db(path)
    assert again.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert again.execute("SELECT count(*) FROM models").fetchone()[0] == 1
    again.close()


def test_threads_opening_a_new_file_at_once_all_get_it(tmp_path: Path) -> None:
    # switching a new file to WAL can fail at once as locked while another connection
    # switches it: open_state_db waits that out as it waits for any lock
    for attempt in range(40):
        path = tmp_path / f"state{attempt}.db"
        failures: list[BaseException] = []

        def open_and_close(path: Path = path, failures: list[BaseException] = failures) -> None:
            try:
                open_state_db(path).close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_and_close) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_later_migrations_apply_in_order_each_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    open_state_db(path).close()
    n = len(MIGRATIONS)
    monkeypatch.setattr(
        state,
        "MIGRATIONS",
        (
            *MIGRATIONS,
            "CREATE TABLE widgets (id TEXT PRIMARY KEY);",
            "CREATE TABLE gadgets (id TEXT);\nINSERT INTO nowhere VALUES (1);",
        ),
    )
    with pytest.raises(StateError, match="no such table: nowhere"):
        open_state_db(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == n + 1
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "widgets" in tables
    assert "gadgets" not in tables
    db.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = open_state_db(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StateError) as caught:
        open_state_db(path)
    assert str(caught.value) == (
        f"state database {path} has schema version 99, newer than the {len(MIGRATIONS)} "
        "this vibewatch knows; upgrade vibewatch"
    )


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database, but long enough to look like a header" * 20)
    with pytest.raises(StateError, match=r"state\.db: file is not a database"):
        open_state_db(path)


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "state.db")
    with pytest.raises(ZeroDivisionError), state.transaction(db):
        db.execute("CREATE TABLE scratch (a)")
        _ = 1 / 0
    assert (
        db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'scratch'").fetchone()[0] == 0
    )
    db.close()


# --- the registry ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def registry(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[Registry]:
    with Registry(tmp_path / "models", tmp_path / "state.db", key.public_key()) as registry:
        yield registry


def registered(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey, version: int, **kw: object
) -> Path:
    """Build, then register a package; returns the directory it was built in."""
    source = tmp_path / "build" / f"{kw.get('model_id', 'pump')}-{version}-{kw.get('seed', 0)}"
    build_package(source, key, version=version, **kw)  # type: ignore[arg-type]
    registry.register(source)
    return source


def test_register_copies_the_package_as_a_candidate(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    assert registry.next_version("pump") == 1
    source = tmp_path / "build"
    package = build_package(source, key)
    entry = registry.register(source)
    assert (entry.model_id, entry.version, entry.status) == ("pump", 1, "candidate")
    assert entry.path == tmp_path / "models" / "pump" / "1"
    assert entry.metrics == package.manifest["metrics"]
    assert entry.decided_at is None and entry.reason is None
    assert entry.registered_at.tzinfo is not None
    for name in PACKAGE_FILES:
        assert (entry.path / name).read_bytes() == (source / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "models" / "pump").iterdir()) == ["1"]
    assert registry.get("pump", 1) == entry
    assert registry.entries() == [entry] == registry.entries("pump")
    assert registry.entries("fan") == []
    assert registry.champion("pump") is None
    assert registry.next_version("pump") == 2
    assert registry.verify("pump", 1) == []
    assert registry.load("pump", 1).manifest == package.manifest


def test_versions_only_grow(registry: Registry, tmp_path: Path, key: Ed25519PrivateKey) -> None:
    registered(registry, tmp_path, key, 1)
    registered(registry, tmp_path, key, 3)
    assert registry.next_version("pump") == 4
    for version in (2, 3):
        with pytest.raises(RegistryError) as caught:
            registered(registry, tmp_path, key, version, seed=5)
        assert str(caught.value) == (
            f"model pump version {version} is not above the versions already registered: "
            "the next version must be at least 4"
        )
    # Deleting the newest row (pruning) does not make its version available again.
    other = open_state_db(tmp_path / "state.db")
    with state.transaction(other):
        other.execute("DELETE FROM models WHERE version = 3")
    other.close()
    assert [e.version for e in registry.entries("pump")] == [1]
    assert registry.next_version("pump") == 4
    with pytest.raises(RegistryError, match="at least 4"):
        registered(registry, tmp_path, key, 3, seed=6)
    registered(registry, tmp_path, key, 4)
    assert registry.next_version("fan") == 1
    registered(registry, tmp_path, key, 1, model_id="fan")
    assert [(e.model_id, e.version) for e in registry.entries()] == [
        ("fan", 1),
        ("pump", 1),
        ("pump", 4),
    ]


def test_promote_retires_the_previous_champion(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    for version in (1, 2, 3):
        registered(registry, tmp_path, key, version)
    first = registry.promote("pump", 1, "first model")
    assert (first.status, first.reason) == ("champion", "first model")
    assert first.decided_at is not None
    second = registry.promote("pump", 2, "AUC 0.998 >= 0.995 - 0.005")
    assert registry.champion("pump") == second
    retired = registry.get("pump", 1)
    assert (retired.status, retired.reason) == ("retired", "replaced by version 2")
    rejected = registry.reject("pump", 3, "false-alarm rate 0.03 above 0.005")
    assert (rejected.status, rejected.reason) == ("rejected", "false-alarm rate 0.03 above 0.005")
    assert [e.status for e in registry.entries("pump")] == ["retired", "champion", "rejected"]

    with pytest.raises(RegistryError) as caught:
        registry.promote("pump", 3, "again")
    assert str(caught.value) == (
        "model pump version 3 is rejected; only a candidate or a retired model can be promoted"
    )
    with pytest.raises(RegistryError, match="version 2 is champion; only a candidate or a"):
        registry.promote("pump", 2, "again")
    with pytest.raises(RegistryError) as caught:
        registry.reject("pump", 2, "no")
    assert str(caught.value) == (
        "model pump version 2 is champion; only a candidate can be rejected"
    )
    # Rolling back: a retired model can become the champion again.
    registry.promote("pump", 1, "roll back")
    assert registry.champion("pump") == registry.get("pump", 1)
    assert registry.get("pump", 2).status == "retired"


def test_the_database_allows_one_champion_per_model(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    registered(registry, tmp_path, key, 2)
    registry.promote("pump", 1, "first")
    other = open_state_db(tmp_path / "state.db")
    with pytest.raises(sqlite3.IntegrityError), state.transaction(other):
        other.execute("UPDATE models SET status = 'champion' WHERE version = 2")
    other.close()
    assert registry.champion("pump") == registry.get("pump", 1)


def test_unknown_entries_are_named(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(RegistryError) as caught:
        registry.get("pump", 1)
    assert str(caught.value) == "model pump version 1 is not registered (no version is registered)"
    registered(registry, tmp_path, key, 2)
    with pytest.raises(RegistryError) as caught:
        registry.promote("pump", 1, "x")
    assert str(caught.value) == "model pump version 1 is not registered (registered versions: [2])"


def test_a_package_that_fails_verification_is_not_registered(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    source = tmp_path / "build"
    build_package(source, key)
    (source / "extra").write_text("x")
    with pytest.raises(RegistryError) as caught:
        registry.register(source)
    assert str(caught.value) == (
        f"refusing to register: model package {source} fails verification: unexpected file extra"
    )
    assert registry.entries() == []
    assert registry.next_version("pump") == 1
    assert not (tmp_path / "models" / "pump").exists()


def test_a_package_signed_by_another_key_is_not_registered(
    registry: Registry, tmp_path: Path
) -> None:
    other = Ed25519PrivateKey.generate()
    build_package(tmp_path / "build", other)
    with pytest.raises(RegistryError, match=r"manifest\.sig is not a valid signature"):
        registry.register(tmp_path / "build")


def test_a_package_changed_after_registering_is_refused(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    vwm = tmp_path / "models" / "pump" / "1" / "model.vwm"
    original = vwm.read_bytes()
    flipped = bytearray(original)
    flipped[40] ^= 0x80
    vwm.write_bytes(flipped)
    problems = registry.verify("pump", 1)
    assert problems[0] == (
        f"model.vwm: sha256 {hashlib.sha256(flipped).hexdigest()}, "
        f"the manifest says {hashlib.sha256(original).hexdigest()}"
    )
    with pytest.raises(RegistryError) as caught:
        registry.load("pump", 1)
    assert str(caught.value).startswith(f"model pump version 1 fails verification: {problems[0]}")
    with pytest.raises(RegistryError, match="fails verification"):
        registry.promote("pump", 1, "must not happen")
    assert registry.get("pump", 1).status == "candidate"
    with pytest.raises(RegistryError, match="fails verification"):
        registry.export("pump", 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_another_validly_signed_package_in_its_place_is_refused(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    target = tmp_path / "models" / "pump" / "1"
    registered_sha = hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
    manifest = json.loads((target / "manifest.json").read_bytes())
    manifest["metrics"]["auc_int8"] = 1.0
    text = canonical_json(manifest)
    resign(target, key, text)
    assert registry.verify("pump", 1) == [
        f"manifest.json has sha256 {hashlib.sha256(text).hexdigest()}, the one registered "
        f"had {registered_sha}"
    ]
    with pytest.raises(RegistryError, match="the one registered had"):
        registry.load("pump", 1)


def test_a_deleted_package_is_reported(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    for path in (tmp_path / "models" / "pump" / "1").iterdir():
        path.unlink()
    (tmp_path / "models" / "pump" / "1").rmdir()
    assert registry.verify("pump", 1) == [
        f"{tmp_path / 'models' / 'pump' / '1'} is not a directory"
    ]


def test_export_writes_a_verified_copy(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    out = tmp_path / "out" / "pump-1"
    exported = registry.export("pump", 1, out)
    assert exported.path == out
    assert verify_package(out, key.public_key()) == exported
    for name in PACKAGE_FILES:
        assert (out / name).read_bytes() == (tmp_path / "models" / "pump" / "1" / name).read_bytes()
    with pytest.raises(RegistryError) as caught:
        registry.export("pump", 1, out)
    assert str(caught.value) == (
        f"cannot export to {out}: the directory already exists and is not empty"
    )


def test_an_interrupted_registration_is_redone(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    leftover = tmp_path / "models" / "pump" / "1"
    leftover.mkdir(parents=True)
    (leftover / "model.vwm").write_bytes(b"half")
    registered(registry, tmp_path, key, 1)
    assert registry.verify("pump", 1) == []


def test_a_model_id_that_cannot_name_a_directory_is_refused(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    with pytest.raises(RegistryError) as caught:
        registered(registry, tmp_path, key, 1, model_id="..")
    assert str(caught.value) == "model id '..' cannot name a directory (starts with '.')"
    assert registry.entries() == []


def test_a_registry_without_a_key_only_reads_the_index(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    with Registry(tmp_path / "models", tmp_path / "state.db", None) as index:
        assert [e.version for e in index.entries()] == [1]
        with pytest.raises(RegistryError) as caught:
            index.load("pump", 1)
        assert str(caught.value) == (
            "cannot read a package without the public key of the package signer"
        )
        with pytest.raises(RegistryError, match="cannot register a package without"):
            index.register(tmp_path / "build" / "pump-1-0")


def test_a_shared_connection_sees_the_same_registry(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    db = open_state_db(tmp_path / "state.db")
    first = Registry(tmp_path / "models", db, key.public_key())
    registered(first, tmp_path, key, 1)
    first.close()  # does not close a connection it was given
    second = Registry(tmp_path / "models", db, key.public_key())
    assert [e.version for e in second.entries()] == [1]
    db.close()


# --- the CLI --------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a data home with a key pair and two registered packages."""
    data = tmp_path / "home"
    generate_keypair(data / "keys" / "model-signing.key", data / "keys" / "model-signing.pub")
    signing = load_private_key(data / "keys" / "model-signing.key")
    with Registry(data / "models", data / "state.db", signing.public_key()) as registry:
        for version in (1, 2):
            build_package(tmp_path / "build" / str(version), signing, version=version)
            registry.register(tmp_path / "build" / str(version))
        registry.promote("pump", 1, "first model")
    return {"VIBEWATCH_DATA_HOME": str(data)}


def test_cli_list(home: dict[str, str]) -> None:
    result = runner.invoke(models_app, ["list"], env=home)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "STATUS", "REGISTERED", "REASON"]
    assert lines[1].split()[:3] == ["pump", "1", "champion"]
    assert lines[1].endswith("first model")
    assert lines[2].split()[:3] == ["pump", "2", "candidate"]
    listed = json.loads(runner.invoke(models_app, ["list", "--json"], env=home).output)
    assert [(e["model_id"], e["version"], e["status"]) for e in listed] == [
        ("pump", 1, "champion"),
        ("pump", 2, "candidate"),
    ]
    assert listed[0]["metrics"]["auc_int8"] == 0.995
    none = runner.invoke(models_app, ["list", "--model-id", "fan"], env=home)
    assert none.output == "no model is registered as 'fan'\n"


def test_cli_show(home: dict[str, str]) -> None:
    result = runner.invoke(models_app, ["show", "pump"], env=home)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("model pump version 2: candidate\n")
    assert "  metrics\n    auc_int8: 0.995\n" in result.output
    shown = json.loads(runner.invoke(models_app, ["show", "pump", "1", "--json"], env=home).output)
    assert (shown["version"], shown["status"], shown["reason"]) == (1, "champion", "first model")
    assert shown["feature_spec"]["window"] == 256
    assert shown["golden_vectors"] == 8
    unknown = runner.invoke(models_app, ["show", "fan"], env=home)
    assert unknown.exit_code == 2
    assert "error: no version of model 'fan' is registered" in unknown.output
    bad_version = runner.invoke(models_app, ["show", "pump", "0"], env=home)
    assert bad_version.exit_code == 2


def test_cli_verify(home: dict[str, str], tmp_path: Path) -> None:
    data = Path(home["VIBEWATCH_DATA_HOME"])
    public = load_private_key(data / "keys" / "model-signing.key").public_key()
    ok = runner.invoke(models_app, ["verify", "pump", "2"], env=home)
    assert ok.exit_code == 0, ok.output
    assert ok.output == (
        f"OK {data / 'models' / 'pump' / '2'}: model pump version 2, signed by "
        f"{fingerprint(public)}\n"
    )
    directory = tmp_path / "build" / "1"
    ok = runner.invoke(models_app, ["verify", str(directory), "--json"], env=home)
    assert json.loads(ok.output) == {
        "ok": True,
        "path": str(directory),
        "model_id": "pump",
        "version": 1,
        "problems": [],
    }

    (directory / "model.tflite").write_bytes(b"other")
    (directory / "notes").write_text("x")
    failed = runner.invoke(models_app, ["verify", str(directory)], env=home)
    assert failed.exit_code == 1
    lines = failed.output.splitlines()
    assert lines[0] == f"FAILED {directory}: 3 problems"
    assert lines[1] == "  - unexpected file notes"
    assert lines[2].startswith("  - model.tflite: 5 bytes, the manifest says ")
    assert lines[3].startswith("  - model.tflite: sha256 ")
    report = json.loads(
        runner.invoke(models_app, ["verify", str(directory), "--json"], env=home).output
    )
    assert report["ok"] is False
    assert report["model_id"] is None
    assert len(report["problems"]) == 3

    (data / "models" / "pump" / "2" / "manifest.sig").write_bytes(bytes(64))
    failed = runner.invoke(models_app, ["verify", "pump", "2", "--json"], env=home)
    assert failed.exit_code == 1
    assert json.loads(failed.output)["problems"] == [
        f"manifest.sig is not a valid signature of manifest.json by the key {fingerprint(public)}"
    ]

    other = tmp_path / "other"
    generate_keypair(other / "k.key", other / "k.pub")
    wrong = runner.invoke(
        models_app, ["verify", "pump", "1", "--public", str(other / "k.pub")], env=home
    )
    assert wrong.exit_code == 1
    assert "manifest.sig is not a valid signature" in wrong.output

    not_a_dir = runner.invoke(models_app, ["verify", "pump"], env=home)
    assert not_a_dir.exit_code == 2
    assert "error: pump is not a package directory (for a registered package" in not_a_dir.output
    unknown = runner.invoke(models_app, ["verify", "pump", "9"], env=home)
    assert unknown.exit_code == 2
    assert "model pump version 9 is not registered" in unknown.output
    no_key = runner.invoke(
        models_app, ["verify", "pump", "1", "--public", str(tmp_path / "none.pub")], env=home
    )
    assert no_key.exit_code == 2


def test_cli_export(home: dict[str, str], tmp_path: Path) -> None:
    data = Path(home["VIBEWATCH_DATA_HOME"])
    out = tmp_path / "export"
    result = runner.invoke(models_app, ["export", "pump", "1", "--out", str(out)], env=home)
    assert result.exit_code == 0, result.output
    assert result.output == f"exported model pump version 1 to {out}\n"
    public = load_private_key(data / "keys" / "model-signing.key").public_key()
    assert verify_package(out, public).version == 1
    again = runner.invoke(models_app, ["export", "pump", "1", "--out", str(out)], env=home)
    assert again.exit_code == 2
    assert "already exists and is not empty" in again.output
    missing = runner.invoke(models_app, ["export", "pump", "1"], env=home)
    assert missing.exit_code == 2


def test_a_rollback_statement_is_kept_checked(
    registry: Registry, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    registered(registry, tmp_path, key, 1)
    assert registry.rollback_statement("pump", 1) is None
    package = registry.load("pump", 1)
    path = registry.add_rollback("pump", 1, sign_rollback(package, key))
    assert path == registry.get("pump", 1).path.parent / "1.rollback.sig"
    assert registry.rollback_statement("pump", 1) == sign_rollback(package, key)
    assert verify_package(registry.get("pump", 1).path, key.public_key())  # untouched
    other = Ed25519PrivateKey.generate()
    with pytest.raises(RegistryError, match="the rollback statement is not a valid signature"):
        registry.add_rollback("pump", 1, sign_rollback(package, other))
    with pytest.raises(RegistryError, match="is not a valid signature of the rollback"):
        registry.add_rollback("pump", 1, package.device_signature)  # no rollback statement
    path.write_bytes(bytes(64))  # damaged on disk
    with pytest.raises(RegistryError, match=r"1\.rollback\.sig: the rollback statement is not"):
        registry.rollback_statement("pump", 1)
    with pytest.raises(RegistryError, match="not registered"):
        registry.add_rollback("pump", 7, bytes(64))


def test_cli_sign_rollback(home: dict[str, str], tmp_path: Path) -> None:
    done = runner.invoke(models_app, ["sign-rollback", "pump", "1", "--json"], env=home)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["model_id"] == "pump" and report["version"] == 1
    assert Path(report["path"]).read_bytes()  # kept in the registry
    other = tmp_path / "other"
    generate_keypair(other / "k.key", other / "k.pub")
    wrong = runner.invoke(
        models_app, ["sign-rollback", "pump", "2", "--signing-key", str(other / "k.key")], env=home
    )
    assert wrong.exit_code == 1
    assert "the rollback statement is not a valid signature of the rollback of pump version 2" in (
        wrong.output
    )
    missing = runner.invoke(
        models_app,
        ["sign-rollback", "pump", "2", "--signing-key", str(tmp_path / "no.key")],
        env=home,
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output
    unknown = runner.invoke(models_app, ["sign-rollback", "pump", "9"], env=home)
    assert unknown.exit_code == 2 and "model pump version 9 is not registered" in unknown.output
