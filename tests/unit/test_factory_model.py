"""The factory model in models/: a valid signed package, exact golden vectors, reproducible
builds, and what it detects on fresh generator data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.edge import FeatureSpec, Model, features_batch
from vibewatch.models.keys import generate_keypair, load_public_key
from vibewatch.models.package import verify_package
from vibewatch.signals import FAULT_KINDS, Fault, Machine, generate
from vibewatch.train.factory import FACTORY_VERSION, SPEED_RANGE_HZ

ROOT = Path(__file__).resolve().parents[2]
FACTORY = ROOT / "models" / "factory"
SPEC = FeatureSpec.default(48_000)


@pytest.fixture(scope="module")
def engine() -> Model:
    package = verify_package(
        FACTORY / "package", load_public_key(ROOT / "models/release-signing.pub")
    )
    return Model(package.vwm)


def windows(count: int, *, seed: int, faults: tuple[Fault, ...] = (), **kw: object) -> np.ndarray:
    samples = generate(
        Machine(),
        duration_s=count * SPEC.window / SPEC.sample_rate_hz,
        sample_rate_hz=SPEC.sample_rate_hz,
        faults=faults,
        seed=seed,
        **kw,  # type: ignore[arg-type]
    )
    return features_batch(samples.reshape(count, SPEC.window), SPEC)


def test_the_factory_package_verifies_and_its_golden_vectors_reproduce(engine: Model) -> None:
    manifest = json.loads((FACTORY / "package/manifest.json").read_text())
    assert (engine.model_id, engine.version) == ("vibewatch-ae", FACTORY_VERSION)
    assert engine.spec == SPEC
    engine.check_golden()
    golden = manifest["golden"]
    assert len(golden) >= 8
    outputs, scores = engine.run(np.array([g["input"] for g in golden], dtype=np.int8))
    np.testing.assert_array_equal(outputs, np.array([g["output"] for g in golden]))
    np.testing.assert_array_equal(scores, np.array([g["score"] for g in golden], np.float32))
    assert (FACTORY / "MODEL_CARD.md").read_text().startswith("# Model card: vibewatch-ae v1")


def allowed_alarms(n: int, rate: float = 0.005) -> int:
    """Alarms a detector at its target false-alarm rate stays within in 99.9 % of runs."""
    return int(binom.ppf(0.999, n, rate))


def test_a_change_of_speed_within_the_trained_range_is_not_an_anomaly(engine: Model) -> None:
    low, high = SPEED_RANGE_HZ
    runs = [
        windows(300, seed=101, speed_hz=(low, high)),  # run-up
        windows(300, seed=102, speed_hz=(high, low)),  # run-down
        windows(300, seed=103, speed_hz=low + 0.5, load=0.6),
        windows(300, seed=104, speed_hz=high - 0.5, load=1.0),
    ]
    for rows in runs:
        alarms = int(np.sum(engine.score(rows) > engine.threshold))
        assert alarms <= allowed_alarms(len(rows))


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_at_moderate_severity_is_detected(engine: Model, kind: str) -> None:
    """Each fault raises far more windows above the threshold than a healthy machine would.

    At severity 0.5 some fault windows show nothing (a 21 ms window can miss the load zone
    of an inner-race or ball defect), so detection is judged over a run of windows: the
    alarms must be many more than a healthy machine at the target rate could raise.
    """
    rows = windows(400, seed=200, faults=(Fault(kind, 0.5),), speed_hz=(26.0, 34.0))
    alarms = int(np.sum(engine.score(rows) > engine.threshold))
    assert alarms >= 10 * allowed_alarms(len(rows))


def test_the_same_seed_builds_the_same_bytes(tmp_path: Path) -> None:
    key = tmp_path / "key"
    generate_keypair(key, tmp_path / "key.pub")
    runner = CliRunner()
    built = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["train", "--generator", "600", "--epochs", "4", "--hidden", "8,4"]
        args += ["--no-register", "--signing-key", str(key), "--out", str(out), "--json"]
        result = runner.invoke(app, args, env={"VIBEWATCH_TRAIN_MIN_HEALTHY_WINDOWS": "100"})
        assert result.exit_code == 0, result.output
        built.append(out)
    files = sorted(p.relative_to(built[0]) for p in built[0].rglob("*") if p.is_file())
    assert [str(f) for f in files] == [
        "MODEL_CARD.md",
        "loss.png",
        "package/device.sig",
        "package/manifest.json",
        "package/manifest.sig",
        "package/model.tflite",
        "package/model.vwm",
        "roc.png",
        "scores.png",
    ]
    for f in files:
        assert (built[0] / f).read_bytes() == (built[1] / f).read_bytes(), f
