"""The one random .vwm builder (vibewatch.testing.models): the C engine runs all it makes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.engine import Model
from vibewatch.edge.spec import STAT_NAMES, FeatureSpec
from vibewatch.edge.vwm import encode
from vibewatch.errors import EdgeError
from vibewatch.models.package import verify_package
from vibewatch.testing.models import (
    TINY_DIMS,
    build_package,
    random_model,
    reseal,
    spec_for,
    tiny_blob,
)


@pytest.mark.parametrize(
    ("dims", "options"),
    [
        ((6, 6), {}),
        ((36, 32, 8, 32, 36), {}),
        ((36, 32, 8, 32, 36), {"per_channel": False}),
        ((12, 7, 3, 7, 12), {"per_channel": [True, False, True, False], "relu": False}),
        ((20, 70, 20), {"shifts": (-31, -20)}),
        ((20, 9, 20), {"shifts": (0, 4), "per_channel": False}),
        ((640, 128, 8, 128, 640), {}),
    ],
)
def test_every_blob_loads_in_the_c_engine_and_reproduces_its_golden_vectors(
    dims: tuple[int, ...], options: dict[str, object]
) -> None:
    model = random_model(7, dims, golden=3, **options)  # type: ignore[arg-type]
    engine = Model(encode(model))
    engine.check_golden()
    assert engine.golden_count == 3
    assert engine.n_features == dims[0] == model.spec.n_features
    assert [layer.weights.shape for layer in model.layers] == [
        (b, a) for a, b in itertools.pairwise(dims)
    ]


def test_the_same_seed_gives_the_same_blob_and_another_seed_another() -> None:
    assert encode(random_model(3, (12, 8, 12))) == encode(random_model(3, (12, 8, 12)))
    assert encode(random_model(3, (12, 8, 12))) != encode(random_model(4, (12, 8, 12)))
    assert tiny_blob(seed=1) == tiny_blob(seed=1)


def test_options_reach_the_blob() -> None:
    spec = spec_for(12, sample_rate_hz=3200, window=512)
    model = random_model(
        0, (12, 6, 12), spec=spec, model_id="fan-9", version=41, golden=0, threshold=2.5
    )
    engine = Model(encode(model))
    assert (engine.model_id, engine.version, engine.golden_count) == ("fan-9", 41, 0)
    assert engine.spec == spec
    assert engine.threshold == 2.5
    per_tensor = random_model(0, (12, 6, 12), per_channel=[True, False])
    assert [len(layer.multiplier) for layer in per_tensor.layers] == [6, 1]
    linear = random_model(0, (12, 6, 12), relu=False)
    assert all(layer.act_min == -128 for layer in linear.layers)
    relu = random_model(0, (12, 6, 12))
    assert relu.layers[0].act_min == relu.layers[0].output_zero_point
    assert relu.layers[-1].act_min == -128


def test_realistic_quantisation_spreads_outputs_over_int8() -> None:
    """Realistic scales keep most outputs off the int8 limits, so golden vectors test arithmetic."""
    for dims in ((36, 32, 8, 32, 36), (640, 128, 128, 8, 128, 128, 640)):
        engine = Model(encode(random_model(1, dims)))
        inputs = np.random.default_rng(2).integers(-128, 128, (64, dims[0])).astype(np.int8)
        outputs, _ = engine.run(inputs)
        saturated = np.mean((outputs == -128) | (outputs == 127))
        assert saturated < 0.05, (dims, saturated)
        assert len(np.unique(outputs)) > 20


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="must start and end with the 12 features"):
        random_model(0, (12, 6, 11))
    with pytest.raises(ValueError, match="must start and end"):
        random_model(0, (10, 6, 10), spec=spec_for(12))
    with pytest.raises(ValueError, match="3 per_channel flags for 2 layers"):
        random_model(0, (12, 6, 12), per_channel=[True, True, True])
    with pytest.raises(ValueError, match="leave no band"):
        spec_for(4)


@pytest.mark.parametrize("n_features", [6, 36, 133, 134, 640, 1028])
def test_spec_for_takes_the_shortest_window_the_c_core_accepts(n_features: int) -> None:
    spec = spec_for(n_features)
    assert spec.n_features == n_features
    assert spec.band_bins == tuple(range(1, n_features - len(STAT_NAMES) + 2))
    if spec.window > 256:  # half the window would not hold the bands
        with pytest.raises(EdgeError):
            FeatureSpec(spec.sample_rate_hz, spec.window // 2, spec.band_bins)


def test_reseal_makes_a_changed_blob_pass_the_crc_check_only() -> None:
    blob = encode(random_model(5, (12, 8, 12), golden=2))
    assert reseal(blob) == blob
    changed = bytearray(blob)
    changed[-6] ^= 0x01  # an output byte of the last golden vector
    with pytest.raises(EdgeError) as not_sealed:
        Model(bytes(changed))
    assert not_sealed.value.reason == "crc"
    with pytest.raises(EdgeError) as golden:
        Model(reseal(changed)).check_golden()
    assert golden.value.reason == "golden"


def test_build_package_writes_a_package_that_verifies(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    package = build_package(tmp_path / "pkg", key, model_id="pump-2", version=3)
    verified = verify_package(package.path, key.public_key())
    assert (verified.manifest["model_id"], verified.manifest["version"]) == ("pump-2", 3)
    assert verified.manifest["architecture"] == {"layers": list(TINY_DIMS)}
