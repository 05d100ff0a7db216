""".tflite -> .vwm conversion: TFLite's integer parameters, refusals, normalisation folding."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch.edge.convert import activation_range, convert, quantize_multiplier, read_layers
from vibewatch.edge.engine import Model
from vibewatch.edge.tflite import read_model
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import ConversionError
from vibewatch.testing.models import spec_for
from vibewatch.testing.tflite import (
    Dense,
    Graph,
    dense_graph,
    keras_conv_tflite,
    keras_tflite,
    replace_operator,
    replace_tensor,
    representative,
    write,
)

DIMS = (12, 10, 3, 10, 12)


# --- QuantizeMultiplier and the activation range ---------------------------------------


def test_quantize_multiplier_known_values() -> None:
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(0.5) == (2**30, 0)
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert quantize_multiplier(3.0) == (3 * 2**29, 2)
    assert quantize_multiplier(2.0**-31) == (2**30, -30)
    assert quantize_multiplier(2.0**-32) == (2**30, -31)
    assert quantize_multiplier(2.0**-33) == (0, 0)  # shift -32: flushed to zero


def test_quantize_multiplier_rounds_half_away_from_zero() -> None:
    """A tie goes up (Python's round() would go to the even 2**30)."""
    assert quantize_multiplier((2**30 + 0.5) / 2**31) == (2**30 + 1, 0)
    assert quantize_multiplier((2**30 + 2.5) / 2**31) == (2**30 + 3, 0)


def test_quantize_multiplier_significand_rounding_to_one_moves_to_the_next_shift() -> None:
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    assert quantize_multiplier(0.25 * (1.0 - 2.0**-40)) == (2**30, -1)


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=2.0**-31, max_value=2.0**29, allow_subnormal=False))
def test_quantize_multiplier_is_within_half_a_step(real: float) -> None:
    mult, shift = quantize_multiplier(real)
    assert 2**30 <= mult < 2**31
    step = Fraction(2) ** (shift - 31)
    assert abs(mult * step - Fraction(real)) <= step / 2


@pytest.mark.parametrize("zp", [-128, -5, 0, 90, 127])
def test_activation_range_relu_starts_at_the_zero_point(zp: int) -> None:
    assert activation_range(1, zp) == (zp, 127)
    assert activation_range(0, zp) == (-128, 127)


def test_activation_range_refuses_relu6() -> None:
    with pytest.raises(ConversionError, match="RELU6"):
        activation_range(3, 0)


# --- Layers of a model from the TF Lite converter ---------------------------------------


@pytest.mark.parametrize("per_channel", [True, False])
def test_layers_of_a_converted_model(per_channel: bool) -> None:
    data = keras_tflite(DIMS, per_channel=per_channel)
    tfl = read_model(data)
    graph = tfl.subgraphs[0]
    model = read_layers(data)
    assert len(model.layers) == len(DIMS) - 1
    first_input = graph.tensors[graph.inputs[0]].quantization
    last_output = graph.tensors[graph.outputs[0]].quantization
    assert first_input is not None and last_output is not None
    assert (model.in_scale, model.in_zero_point) == (
        first_input.scale[0],
        first_input.zero_point[0],
    )
    assert (model.out_scale, model.out_zero_point) == (
        last_output.scale[0],
        last_output.zero_point[0],
    )
    for i, (layer, op) in enumerate(zip(model.layers, graph.operators, strict=True)):
        x, w, b, y = (graph.tensors[t] for t in (*op.inputs, op.outputs[0]))
        assert x.quantization and w.quantization and y.quantization
        assert layer.weights.tobytes() == tfl.tensor_data(w)
        assert layer.bias.astype("<i4").tobytes() == tfl.tensor_data(b)
        assert layer.output_zero_point == y.quantization.zero_point[0]
        assert len(layer.multiplier) == (DIMS[i + 1] if per_channel else 1)
        for mult, shift, w_scale in zip(
            layer.multiplier, layer.shift, w.quantization.scale, strict=True
        ):
            real = x.quantization.scale[0] * w_scale / y.quantization.scale[0]
            assert 2**30 <= mult < 2**31
            assert math.isclose(int(mult) * 2.0 ** (int(shift) - 31), real, rel_tol=2**-30)
        relu = i < len(DIMS) - 2
        assert layer.act_min == (layer.output_zero_point if relu else -128)
        assert layer.act_max == 127


def test_a_zero_bias_dropped_by_the_converter_becomes_zeros() -> None:
    model = read_layers(keras_tflite(DIMS, zero_bias=True))
    assert all(not layer.bias.any() for layer in model.layers)
    assert [layer.bias.shape for layer in model.layers] == [(d,) for d in DIMS[1:]]


# --- Refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (keras_conv_tflite, "CONV_2D"),
        (lambda: keras_tflite(DIMS, quantize="none"), "type FLOAT32, expected INT8"),
        (lambda: keras_tflite(DIMS, quantize="int16x8"), "type INT16, expected INT8"),
        (lambda: keras_tflite(DIMS, hidden="relu6"), "fused activation RELU6"),
        (lambda: keras_tflite(DIMS, output="tanh"), "TANH"),
    ],
    ids=["conv", "float", "int16", "relu6", "tanh"],
)
def test_converter_models_outside_the_subset_are_refused(
    make: Callable[[], bytes], message: str
) -> None:
    with pytest.raises(ConversionError, match=message):
        read_layers(make())


def _base() -> Graph:
    rng = np.random.default_rng(11)
    return dense_graph(
        0.05,
        3,
        [
            Dense(
                rng.integers(-127, 128, (7, 5)).astype(np.int8),
                rng.uniform(0.005, 0.02, 7).tolist(),
                0.1,
                -5,
                bias=rng.integers(-999, 999, 7).astype(np.int32),
                relu=True,
            ),
            Dense(
                rng.integers(-127, 128, (5, 7)).astype(np.int8),
                [0.01],
                0.07,
                2,
                bias=rng.integers(-999, 999, 5).astype(np.int32),
            ),
        ],
    )


def _chain(n_layers: int, dim: int) -> Graph:
    layer = Dense(np.ones((dim, dim), dtype=np.int8), [0.01], 0.1, 0)
    return dense_graph(0.1, 0, [layer] * n_layers)


# Tensors of _base(): 0 input, 1 weights 0, 2 bias 0, 3 output 0, 4 weights 1, 5 bias 1,
# 6 output 1 (the model output).
HOSTILE: dict[str, tuple[Callable[[Graph], Graph], str]] = {
    "other operator": (lambda g: replace_operator(g, 1, opcode=28), r"TANH \(operator 1\)"),
    "custom operator": (lambda g: replace_operator(g, 0, opcode=32), r"CUSTOM\(\)"),
    "relu6": (lambda g: replace_operator(g, 0, activation=3), "fused activation RELU6"),
    "tanh activation": (lambda g: replace_operator(g, 1, activation=4), "fused activation TANH"),
    "shuffled weights": (
        lambda g: replace_operator(g, 0, weights_format=1),
        "weights format SHUFFLED4X16INT8",
    ),
    "weight zero point": (
        lambda g: replace_tensor(g, 4, zero_point=(3,)),
        "'dense_1/weights'.* non-zero zero points",
    ),
    "int16 input": (lambda g: replace_tensor(g, 0, type=7), "type INT16, expected INT8"),
    "float output": (lambda g: replace_tensor(g, 6, type=0), "type FLOAT32, expected INT8"),
    "int4 weights": (lambda g: replace_tensor(g, 1, type=17), "have type INT4"),
    "int64 bias": (lambda g: replace_tensor(g, 5, type=4), "has type INT64, expected INT32"),
    "batch 2": (lambda g: replace_tensor(g, 0, shape=(2, 5)), r"shape \[2, 5\], expected"),
    "3-D input": (lambda g: replace_tensor(g, 0, shape=(1, 1, 5)), r"shape \[1, 1, 5\]"),
    "weights of the wrong shape": (
        lambda g: replace_tensor(g, 4, shape=(5, 6)),
        r"shape \[5, 6\], expected \[5, 7\]",
    ),
    "per-channel along inputs": (
        lambda g: replace_tensor(g, 1, quantized_dimension=1),
        "along dimension 1",
    ),
    "not a chain": (lambda g: replace_operator(g, 1, inputs=(0, 4, 5)), "not a chain"),
    "output is not the last": (
        lambda g: dataclasses.replace(g, outputs=(3,)),
        "its output is tensor 3",
    ),
    "two subgraphs": (lambda g: dataclasses.replace(g, extra_subgraphs=1), "2 subgraphs"),
    "unquantised activation": (lambda g: replace_tensor(g, 3, scale=None), "not quantised"),
    "zero scale": (lambda g: replace_tensor(g, 0, scale=(0.0,)), "scale 0.0"),
    "zero point outside int8": (lambda g: replace_tensor(g, 3, zero_point=(200,)), "outside"),
    "bias scale": (
        lambda g: replace_tensor(g, 5, scale=(1.0,)),
        "not input scale times weight scale",
    ),
    "effective scale too large": (
        lambda g: replace_tensor(g, 6, scale=(1e-15,)),
        "effective scale",
    ),
    "constant input": (lambda g: replace_tensor(g, 0, data=bytes(5)), "is a constant"),
    "short weight data": (lambda g: replace_tensor(g, 1, data=bytes(3)), "holds 3 bytes"),
    "seventeen layers": (lambda g: _chain(17, 4), "17 operators"),
    "dim over 2048": (lambda g: _chain(1, 2049), r"shape \[1, 2049\]"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_variants_are_refused_with_a_message_naming_them(case: str) -> None:
    change, message = HOSTILE[case]
    read_layers(write(_base()))  # the unchanged model converts
    with pytest.raises(ConversionError, match=message):
        read_layers(write(change(_base())))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_models_convert_or_raise_conversion_error_only(data: st.DataObject) -> None:
    blob = bytearray(write(_base()))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(8, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ConversionError):
        read_layers(bytes(blob))


def test_missing_options_mean_no_activation() -> None:
    model = read_layers(write(replace_operator(_base(), 0, options=False)))
    assert (model.layers[0].act_min, model.layers[0].act_max) == (-128, 127)


def test_largest_model_of_the_format_converts() -> None:
    assert len(read_layers(write(_chain(16, 8))).layers) == 16
    assert read_layers(write(_chain(1, 2048))).layers[0].weights.shape == (2048, 2048)


# --- The blob -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def normalised() -> tuple[bytes, np.ndarray, np.ndarray, bytes]:
    rng = np.random.default_rng(4)
    n = DIMS[0]
    mean = rng.uniform(-3.0, 3.0, n)
    std = rng.uniform(0.2, 5.0, n)
    data = keras_tflite(DIMS)
    golden = rng.integers(-128, 128, (5, n)).astype(np.int8)
    blob = convert(
        data,
        spec_for(n),
        model_id="pump-ae",
        version=12,
        mean=mean,
        std=std,
        threshold=0.25,
        golden_inputs=golden,
    )
    return data, mean, std, blob


def test_blob_is_accepted_and_reproduces_its_golden_vectors(
    normalised: tuple[bytes, np.ndarray, np.ndarray, bytes],
) -> None:
    _, _, _, blob = normalised
    model = Model(blob)
    model.check_golden()
    header = decode_header(blob)
    assert (header.model_id, header.version, header.golden_count) == ("pump-ae", 12, 5)
    assert header.n_layers == len(DIMS) - 1
    assert header.threshold == pytest.approx(0.25)
    assert model.spec == spec_for(DIMS[0])


def test_normalisation_is_folded_into_input_quantisation(
    normalised: tuple[bytes, np.ndarray, np.ndarray, bytes],
) -> None:
    """Quantising raw features equals TFLite's quantisation of the normalised ones (+-1)."""
    data, mean, std, blob = normalised
    layers = read_layers(data)
    raw = representative(DIMS[0], 400, seed=9) * 3.0 * std + mean
    q = Model(blob).quantize(raw.astype(np.float32)).astype(np.int32)
    normal = (raw - mean) / std / layers.in_scale
    expected = np.clip(
        np.sign(normal) * np.floor(np.abs(normal) + 0.5) + layers.in_zero_point, -128, 127
    )
    assert np.max(np.abs(q - expected)) <= 1
    assert q.min() == -128 and q.max() == 127  # the clamp is exercised


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": spec_for(16)}, "feature spec has 16 features"),
        ({"std": np.zeros(DIMS[0])}, "std has a value <= 0"),
        ({"mean": np.zeros(DIMS[0] + 1)}, "mean must be 12 finite numbers"),
        ({"mean": np.full(DIMS[0], np.nan)}, "mean must be 12 finite numbers"),
        ({"std": np.full(DIMS[0], 1e-45)}, "overflows float32"),
    ],
    ids=["spec", "std", "mean shape", "mean nan", "overflow"],
)
def test_convert_refuses_what_the_blob_cannot_hold(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "spec": spec_for(DIMS[0]),
        "model_id": "m",
        "version": 1,
        "mean": np.zeros(DIMS[0]),
        "std": np.ones(DIMS[0]),
        "threshold": 1.0,
    } | kwargs
    with pytest.raises(ConversionError, match=message):
        convert(keras_tflite(DIMS), **args)  # type: ignore[arg-type]
