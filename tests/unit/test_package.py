"""The signed model package: writing, and verification that refuses any change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import Model
from vibewatch.errors import PackageError
from vibewatch.models.keys import fingerprint
from vibewatch.models.package import (
    FORMAT,
    PACKAGE_FILES,
    ModelPackage,
    blob_fields,
    canonical_json,
    golden_vectors,
    rollback_problems,
    sign_rollback,
    verify_package,
    write_package,
)
from vibewatch.protocol import signed_model_text
from vibewatch.testing.models import (
    TFLITE_STAND_IN as TFLITE,
)
from vibewatch.testing.models import (
    TINY_DIMS,
    build_package,
    producer_manifest,
    reseal,
    resign,
    spec_for,
    tiny_blob,
)

SPEC = spec_for(TINY_DIMS[0])
"""The feature spec of the tiny models: 2 bands + 4 statistics = 6 features."""


def problems_of(directory: Path, key: Ed25519PrivateKey) -> list[str]:
    with pytest.raises(PackageError) as caught:
        verify_package(directory, key.public_key())
    assert caught.value.path == str(directory)
    return caught.value.problems


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def package(tmp_path: Path, key: Ed25519PrivateKey) -> ModelPackage:
    return build_package(tmp_path / "pkg", key)


def device_signature_problem(key: Ed25519PrivateKey) -> str:
    return (
        "device.sig is not a valid signature of the install statement of model.vwm by the "
        f"key {fingerprint(key.public_key())}"
    )


def signature_problem(key: Ed25519PrivateKey) -> str:
    return (
        "manifest.sig is not a valid signature of manifest.json by the key "
        f"{fingerprint(key.public_key())}"
    )


# --- writing --------------------------------------------------------------------


def test_written_package_round_trips(package: ModelPackage, key: Ed25519PrivateKey) -> None:
    directory = package.path
    assert sorted(p.name for p in directory.iterdir()) == sorted(PACKAGE_FILES)
    vwm = (directory / "model.vwm").read_bytes()
    assert (directory / "model.tflite").read_bytes() == TFLITE
    assert vwm == tiny_blob()
    text = (directory / "manifest.json").read_bytes()
    key.public_key().verify((directory / "manifest.sig").read_bytes(), text)
    manifest = json.loads(text)
    assert manifest["format"] == FORMAT
    assert manifest["files"] == {
        "model.tflite": {"bytes": len(TFLITE), "sha256": hashlib.sha256(TFLITE).hexdigest()},
        "model.vwm": {"bytes": len(vwm), "sha256": hashlib.sha256(vwm).hexdigest()},
    }
    assert {k: v for k, v in manifest.items() if k not in ("format", "files")} == (
        producer_manifest(vwm)
    )
    loaded = verify_package(directory, key.public_key())
    assert loaded == package
    assert (loaded.model_id, loaded.version) == ("pump", 1)
    assert loaded.manifest_bytes == text
    assert loaded.manifest_sha256 == hashlib.sha256(text).hexdigest()


def test_manifest_is_canonical_json(package: ModelPackage) -> None:
    text = (package.path / "manifest.json").read_bytes()
    assert text.endswith(b"}\n")
    assert (
        text
        == (
            json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=True) + "\n"
        ).encode()
    )
    assert text.isascii()


def test_same_inputs_give_identical_bytes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    first = build_package(tmp_path / "a", key)
    second = build_package(tmp_path / "b", key)
    for name in PACKAGE_FILES:
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes(), name


def test_golden_scores_are_exact_as_json_numbers() -> None:
    model = Model(tiny_blob())
    inputs = np.random.default_rng(3).integers(-128, 128, (8, model.n_features))
    entries = json.loads(canonical_json(golden_vectors(model, inputs)))
    outputs, scores = model.run(inputs.astype(np.int8))
    for entry, out, score in zip(entries, outputs, scores, strict=True):
        assert entry["output"] == out.tolist()
        assert np.float32(entry["score"]).tobytes() == score.tobytes()


def test_blob_fields_describe_the_blob() -> None:
    blob = tiny_blob("fan-3", 9)
    model = Model(blob)
    assert blob_fields(model) == {
        "model_id": "fan-3",
        "version": 9,
        "threshold": 0.75,
        "feature_spec": {
            "id": SPEC.spec_id,
            "sample_rate_hz": SPEC.sample_rate_hz,
            "window": SPEC.window,
            "band_bins": list(SPEC.band_bins),
        },
        "device": {"flash_bytes": len(blob), "ram_bytes": model.ram_bytes},
    }


def test_save_copies_a_verified_package(
    package: ModelPackage, tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    copy = package.save(tmp_path / "copy")
    assert copy.path == tmp_path / "copy"
    assert verify_package(copy.path, key.public_key()) == copy
    for name in PACKAGE_FILES:
        assert (copy.path / name).read_bytes() == (package.path / name).read_bytes()


def test_an_existing_package_is_replaced_only_when_asked(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    directory = tmp_path / "pkg"
    build_package(directory, key, seed=1)
    before = (directory / "manifest.json").read_bytes()
    with pytest.raises(PackageError) as caught:
        build_package(directory, key, seed=2)
    assert caught.value.problems == ["the directory already exists and is not empty"]
    assert (directory / "manifest.json").read_bytes() == before
    vwm = tiny_blob(seed=2)
    replaced = write_package(
        directory,
        tflite=TFLITE,
        vwm=vwm,
        manifest=producer_manifest(vwm, 2),
        private_key=key,
        overwrite=True,
    )
    assert replaced.manifest["metrics"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no staging left over


def test_an_empty_directory_can_receive_a_package(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    (tmp_path / "pkg").mkdir()
    assert build_package(tmp_path / "pkg", key).path == tmp_path / "pkg"


def refused_write(
    tmp_path: Path, key: Ed25519PrivateKey, manifest: dict[str, Any], vwm: bytes | None = None
) -> list[str]:
    directory = tmp_path / "refused"
    with pytest.raises(PackageError) as caught:
        write_package(
            directory,
            tflite=TFLITE,
            vwm=tiny_blob() if vwm is None else vwm,
            manifest=manifest,
            private_key=key,
        )
    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []
    return caught.value.problems


def test_write_refuses_a_manifest_that_does_not_match_the_blob(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    blob = tiny_blob()
    manifest = producer_manifest(blob)
    spec = {**manifest["feature_spec"], "window": 512}
    wrong = {
        **manifest,
        "model_id": "fan",
        "version": 2,
        "threshold": 0.5,
        "feature_spec": spec,
        "device": {"flash_bytes": len(blob), "ram_bytes": 1},
    }
    assert refused_write(tmp_path, key, wrong) == [
        'manifest: model_id is "fan", model.vwm has "pump"',
        "manifest: version is 2, model.vwm has 1",
        "manifest: threshold is 0.5, model.vwm has 0.75",
        f"manifest: feature_spec is {json.dumps(spec)[:77]}..., "
        f"model.vwm has {json.dumps(manifest['feature_spec'])[:77]}...",
        f'manifest: device is {{"flash_bytes": {len(blob)}, "ram_bytes": 1}}, model.vwm has '
        f'{{"flash_bytes": {len(blob)}, "ram_bytes": {Model(blob).ram_bytes}}}',
    ]


def test_write_refuses_golden_vectors_the_engine_does_not_reproduce(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    manifest = producer_manifest(tiny_blob())
    golden = [dict(entry) for entry in manifest["golden"]]
    right_output = golden[2]["output"]
    golden[2]["output"] = [right_output[0] ^ 1, *right_output[1:]]
    right_score = golden[5]["score"]
    golden[5]["score"] = float(np.nextafter(np.float32(right_score), np.float32(np.inf)))
    golden[6]["input"] = golden[6]["input"][:-1]
    assert refused_write(tmp_path, key, {**manifest, "golden": golden}) == [
        "manifest: golden[6] has 5 inputs and 6 outputs, the model has 6 features",
        f"manifest: golden[2] output {json.dumps(golden[2]['output'])} differs from the "
        f"C engine's {json.dumps(right_output)}",
        f"manifest: golden[5] score {golden[5]['score']!r} differs from the "
        f"C engine's {right_score!r}",
    ]


def test_write_refuses_an_incomplete_manifest(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    manifest = producer_manifest(tiny_blob())
    del manifest["metrics"]
    bad = {
        **manifest,
        "version": 0,
        "training_data": [],
        "golden": [*manifest["golden"][:6], {"input": [1]}],
        "format": "mine",
    }
    assert refused_write(tmp_path, key, bad) == [
        "manifest: key 'format' is added by write_package",
        "manifest: missing key 'metrics'",
        "manifest: version must be an integer >= 1, got 0",
        "manifest: training_data must be an object, got []",
        "manifest: golden holds 7 vectors, at least 8 are needed",
        'manifest: golden[6] must be {"input": [int8...], "output": [int8...], "score": '
        'number}, got {"input": [1]}',
        "manifest: version is 0, model.vwm has 1",
    ]


def test_write_refuses_values_json_cannot_hold(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    manifest = producer_manifest(tiny_blob())
    problems = refused_write(tmp_path, key, {**manifest, "metrics": {"auc": np.float32(0.9)}})
    assert problems == [
        "manifest: cannot be written as JSON: Object of type float32 is not JSON serializable"
    ]
    problems = refused_write(tmp_path, key, {**manifest, "metrics": {"auc": float("nan")}})
    assert problems == [
        "manifest: cannot be written as JSON: Out of range float values are not JSON compliant: nan"
    ]


def test_write_refuses_a_blob_the_firmware_refuses(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    blob = tiny_blob()
    manifest = producer_manifest(blob)
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    assert refused_write(tmp_path, key, manifest, damaged) == [
        f"model.vwm is refused by the model parser: crc: parsing a {len(blob)}-byte .vwm blob"
    ]


def test_write_refuses_a_blob_whose_own_golden_vectors_fail(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    blob = bytearray(tiny_blob())
    blob[-1] ^= 0x01  # the last golden score
    vwm = reseal(blob)
    assert refused_write(tmp_path, key, producer_manifest(vwm), vwm) == [
        "model.vwm: its own golden vectors are not reproduced by the C engine: "
        "golden: golden vectors of model pump v1"
    ]


# --- verification -------------------------------------------------------------------


def test_every_flipped_byte_of_every_file_is_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    directory = package.path
    for name in PACKAGE_FILES:
        original = (directory / name).read_bytes()
        want = hashlib.sha256(original).hexdigest()
        # Flipped in place: truncating and rewriting the file each time costs more than
        # the verification.
        with open(directory / name, "r+b") as f:
            for i, byte in enumerate(original):
                flipped = bytearray(original)
                flipped[i] ^= 0x01
                f.seek(i)
                f.write(bytes([byte ^ 0x01]))
                f.flush()
                problems = problems_of(directory, key)
                f.seek(i)
                f.write(bytes([byte]))
                f.flush()
                if name in ("manifest.json", "manifest.sig"):
                    assert signature_problem(key) in problems, (name, i)
                    continue
                if name == "device.sig":
                    assert problems == [device_signature_problem(key)], i
                    continue
                got = hashlib.sha256(flipped).hexdigest()
                assert problems[0] == f"{name}: sha256 {got}, the manifest says {want}", i
                if name == "model.vwm":
                    assert problems[1].startswith("model.vwm is refused by the model parser: ")
                assert len(problems) == 1 + (name == "model.vwm"), (name, i, problems)
    verify_package(directory, key.public_key())


def test_a_wrong_key_is_refused(package: ModelPackage) -> None:
    other = Ed25519PrivateKey.generate()
    assert problems_of(package.path, other) == [
        signature_problem(other),
        device_signature_problem(other),
    ]


def test_a_device_signature_of_another_blob_is_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    # validly signed by the key, but the statement of another version of the blob
    text = signed_model_text(package.model_id, package.version + 1, len(package.vwm), "0" * 64)
    (package.path / "device.sig").write_bytes(key.sign(text))
    assert problems_of(package.path, key) == [device_signature_problem(key)]
    assert package.install_text() == signed_model_text(
        package.model_id,
        package.version,
        len(package.vwm),
        hashlib.sha256(package.vwm).hexdigest(),
    )
    key.public_key().verify(package.device_signature, package.install_text())


def test_a_rollback_statement_is_signed_apart(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    statement = sign_rollback(package, key)
    assert rollback_problems(package, statement, key.public_key()) == []
    assert package.install_text(rollback=True) == package.install_text() + b"rollback\n"
    other = Ed25519PrivateKey.generate()
    assert rollback_problems(package, statement, other.public_key()) == [
        f"the rollback statement is not a valid signature of the rollback of "
        f"{package.model_id} version {package.version} by the key "
        f"{fingerprint(other.public_key())}"
    ]
    # the package's own install statement is no rollback statement
    assert rollback_problems(package, package.device_signature, key.public_key())
    assert rollback_problems(package, statement[:10], key.public_key()) == [
        "the rollback statement holds 10 bytes, an Ed25519 signature holds 64"
    ]


def test_a_manifest_edited_after_signing_is_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    manifest = json.loads((package.path / "manifest.json").read_bytes())
    manifest["metrics"]["auc_int8"] = 1.0
    (package.path / "manifest.json").write_bytes(canonical_json(manifest))
    assert problems_of(package.path, key) == [signature_problem(key)]


def test_a_short_signature_is_refused(package: ModelPackage, key: Ed25519PrivateKey) -> None:
    (package.path / "manifest.sig").write_bytes(package.signature[:-1])
    assert problems_of(package.path, key) == [
        "manifest.sig holds 63 bytes, an Ed25519 signature holds 64"
    ]


def test_missing_extra_and_linked_files_are_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    directory = package.path
    (directory / "model.tflite").unlink()
    (directory / "notes.txt").write_text("x")
    (directory / "sub").mkdir()
    assert problems_of(directory, key) == [
        "unexpected file notes.txt",
        "unexpected file sub",
        "missing file model.tflite",
    ]
    (directory / "notes.txt").unlink()
    (directory / "sub").rmdir()
    (directory / "elsewhere.tflite").write_bytes(TFLITE)
    (directory / "model.tflite").symlink_to(directory / "elsewhere.tflite")
    (directory / "model.vwm").unlink()
    (directory / "model.vwm").mkdir()
    assert problems_of(directory, key) == [
        "unexpected file elsewhere.tflite",
        "model.tflite is a symbolic link, not a regular file",
        "model.vwm is not a regular file",
    ]


def test_a_path_that_is_not_a_directory_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    assert problems_of(tmp_path / "nothing", key) == [f"{tmp_path / 'nothing'} is not a directory"]


def test_signed_manifests_that_break_the_format_are_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    directory = package.path
    manifest = dict(package.manifest)
    resign(directory, key, json.dumps(manifest, sort_keys=True, indent=4).encode() + b"\n")
    assert problems_of(directory, key) == [
        "manifest.json is not canonical JSON (sorted keys, indent 2, ASCII, no NaN, "
        "newline at the end)"
    ]
    resign(directory, key, b"[1, 2]\n")
    assert problems_of(directory, key) == ["manifest.json is not a JSON object"]
    resign(directory, key, b"{\n")
    problems = problems_of(directory, key)
    assert len(problems) == 1
    assert problems[0].startswith("manifest.json is not valid JSON: ")


def test_signed_manifests_that_do_not_match_the_files_are_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    directory = package.path
    files = {
        "model.tflite": {"bytes": 3, "sha256": "0" * 64},
        "model.vwm": package.manifest["files"]["model.vwm"],
    }
    resign(directory, key, canonical_json({**package.manifest, "files": files, "version": 4}))
    assert problems_of(directory, key) == [
        f"model.tflite: {len(TFLITE)} bytes, the manifest says 3",
        f"model.tflite: sha256 {hashlib.sha256(TFLITE).hexdigest()}, the manifest says {'0' * 64}",
        "manifest: version is 4, model.vwm has 1",
    ]
    del files["model.tflite"]
    resign(directory, key, canonical_json({**package.manifest, "files": files, "format": "x/2"}))
    assert problems_of(directory, key) == [
        'manifest: format must be "vibewatch-model-package/2", got "x/2"',
        'manifest: files must be {"model.tflite": {"bytes", "sha256"}, "model.vwm": {...}} '
        f"and nothing else, got {json.dumps(files)[:77]}...",
    ]


def test_a_signed_manifest_with_wrong_golden_vectors_is_refused(
    package: ModelPackage, key: Ed25519PrivateKey
) -> None:
    golden = [dict(entry) for entry in package.manifest["golden"]]
    golden[0]["score"] = golden[0]["score"] * 2
    resign(package.path, key, canonical_json({**package.manifest, "golden": golden}))
    assert problems_of(package.path, key) == [
        f"manifest: golden[0] score {golden[0]['score']!r} differs from the C engine's "
        f"{package.manifest['golden'][0]['score']!r}"
    ]
