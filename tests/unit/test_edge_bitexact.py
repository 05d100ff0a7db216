"""Every output byte of the engine equals the TFLite Micro interpreter's, model by model.

The reference is ``tflite_micro.python.tflite_micro.runtime.Interpreter`` (the reference
kernels of TFLite Micro). The same ``.tflite`` bytes go to the interpreter and, through
:func:`vibewatch.edge.convert.convert`, to the C engine.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tflite_micro.python.tflite_micro import runtime

from vibewatch.edge.convert import convert, read_layers
from vibewatch.edge.engine import Model
from vibewatch.testing.models import spec_for
from vibewatch.testing.tflite import Dense, dense_graph, keras_tflite, representative, write

SMALL = (36, 32, 8, 32, 36)
#: The MLPerf Tiny anomaly-detection autoencoder (dense layers, ReLU), about 270 k weights.
MLPERF_AD = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)


def tflm_run(tflite: bytes, inputs: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """Outputs of the TFLite Micro interpreter, one invocation per input row."""
    interpreter = runtime.Interpreter.from_bytes(tflite)
    rows = []
    for row in inputs:
        interpreter.set_input(row[None, :], 0)
        interpreter.invoke()
        rows.append(np.asarray(interpreter.get_output(0), dtype=np.int8).reshape(-1))
    return np.stack(rows)


def engine(tflite: bytes, golden: npt.NDArray[np.int8] | None = None) -> Model:
    """The C engine on the converted model (identity normalisation)."""
    n = read_layers(tflite).layers[0].weights.shape[1]
    blob = convert(
        tflite,
        spec_for(n),
        model_id="bitexact",
        version=1,
        mean=np.zeros(n),
        std=np.ones(n),
        threshold=1.0,
        golden_inputs=golden if golden is not None else (),
    )
    return Model(blob)


def inputs_for(tflite: bytes, seed: int) -> npt.NDArray[np.int8]:
    """300 uniform int8 rows, 200 from the representative distribution, and the extremes."""
    model = read_layers(tflite)
    n = model.layers[0].weights.shape[1]
    rng = np.random.default_rng(seed)
    uniform = rng.integers(-128, 128, (300, n)).astype(np.int8)
    features = representative(n, 200, seed=seed + 1)
    scaled = np.round(features / model.in_scale) + model.in_zero_point
    typical = np.clip(scaled, -128, 127).astype(np.int8)
    extremes = np.array([[-128] * n, [127] * n, [model.in_zero_point] * n], dtype=np.int8)
    return np.concatenate([uniform, typical, extremes])


def reference_scores(
    tflite: bytes, inputs: npt.NDArray[np.int8], outputs: npt.NDArray[np.int8]
) -> npt.NDArray[np.float32]:
    """Mean squared reconstruction error in the normalised space, from the given bytes."""
    model = read_layers(tflite)
    x = np.float32(model.in_scale) * (inputs.astype(np.float32) - model.in_zero_point)
    y = np.float32(model.out_scale) * (outputs.astype(np.float32) - model.out_zero_point)
    result: npt.NDArray[np.float32] = ((y - x) ** 2).mean(axis=1, dtype=np.float32)
    return result


@pytest.fixture(
    scope="module",
    params=[
        pytest.param({"dims": SMALL}, id="small-per-channel"),
        pytest.param({"dims": SMALL, "per_channel": False}, id="small-per-tensor"),
        pytest.param({"dims": SMALL, "zero_bias": True}, id="small-no-bias"),
        pytest.param({"dims": MLPERF_AD}, id="mlperf-ad"),
    ],
)
def converted(request: pytest.FixtureRequest) -> bytes:
    kwargs: dict[str, Any] = dict(request.param)
    return keras_tflite(kwargs.pop("dims"), **kwargs)


def test_every_output_byte_equals_tflite_micro(converted: bytes) -> None:
    inputs = inputs_for(converted, seed=len(converted) % 1000)
    expected = tflm_run(converted, inputs)
    model = engine(converted, golden=inputs[:8])
    outputs, scores = model.run(inputs)
    mismatched = np.flatnonzero((outputs != expected).any(axis=1))
    assert not len(mismatched), f"{len(mismatched)} rows differ, first {mismatched[:5]}"
    np.testing.assert_allclose(scores, reference_scores(converted, inputs, expected), rtol=1e-5)
    model.check_golden()


def test_mlperf_sized_model_has_the_expected_size() -> None:
    model = read_layers(keras_tflite(MLPERF_AD))
    weights = sum(layer.weights.size for layer in model.layers)
    assert [layer.weights.shape[0] for layer in model.layers] == list(MLPERF_AD[1:])
    assert 260_000 < weights < 280_000


@st.composite
def dense_chains(draw: st.DrawFn) -> tuple[float, int, list[Dense]]:
    """1..3 int8 layers, dims 1..70 (in = out = 6..70), any scales, zero points and biases."""
    n = draw(st.integers(6, 70), label="n_features")
    dims = [n, *draw(st.lists(st.integers(1, 70), max_size=2), label="hidden"), n]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    in_scale = float(np.float32(2.0 ** draw(st.floats(-10, 3), label="log2 input scale")))
    in_zero_point = draw(st.integers(-128, 127), label="input zero point")
    scale = in_scale
    layers = []
    for a, b in itertools.pairwise(dims):
        per_channel = draw(st.booleans(), label="per channel")
        w_scales = (2.0 ** rng.uniform(-12, 0, b if per_channel else 1)).astype(np.float32)
        # Half the draws in the range where int8 outputs are mostly not saturated.
        log2_effective = st.one_of(st.floats(-24, 6), st.floats(-16, -6))
        effective = 2.0 ** draw(log2_effective, label="log2 effective scale")
        out_scale = float(np.float32(scale * float(w_scales[0]) / effective))
        bias_bits = draw(st.sampled_from([0, 12, 29]), label="bias bits")
        bias = rng.integers(-(2**bias_bits), 2**bias_bits, b).astype(np.int32)
        layers.append(
            Dense(
                weights=rng.integers(-128, 128, (b, a)).astype(np.int8),
                weight_scales=w_scales.tolist(),
                out_scale=out_scale,
                out_zero_point=draw(st.integers(-128, 127), label="output zero point"),
                bias=bias if bias_bits else None,
                relu=draw(st.booleans(), label="relu"),
            )
        )
        scale = out_scale
    return in_scale, in_zero_point, layers


@settings(max_examples=50, deadline=None)
@given(dense_chains(), st.integers(0, 2**32 - 1))
def test_random_dense_chains_are_bit_exact(
    chain: tuple[float, int, list[Dense]], seed: int
) -> None:
    in_scale, in_zero_point, layers = chain
    tflite = write(dense_graph(in_scale, in_zero_point, layers))
    n = layers[0].weights.shape[1]
    rng = np.random.default_rng(seed)
    inputs = np.concatenate(
        [
            rng.integers(-128, 128, (16, n)).astype(np.int8),
            np.array([[-128] * n, [127] * n, [in_zero_point] * n], dtype=np.int8),
        ]
    )
    outputs, _ = engine(tflite).run(inputs)
    np.testing.assert_array_equal(outputs, tflm_run(tflite, inputs))
