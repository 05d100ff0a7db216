"""The .tflite flatbuffer reader, on models from the TF Lite converter and hostile bytes."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch.edge.tflite import (
    ActivationFunction,
    BuiltinOperator,
    Model,
    TensorType,
    activation_name,
    operator_name,
    read_model,
    type_name,
)
from vibewatch.errors import ConversionError
from vibewatch.testing.tflite import Dense, dense_graph, keras_tflite, write

DIMS = (12, 10, 3, 10, 12)


@pytest.fixture(scope="module")
def converted() -> tuple[bytes, Model]:
    data = keras_tflite(DIMS)
    return data, read_model(data)


@pytest.fixture(scope="module")
def written() -> bytes:
    rng = np.random.default_rng(3)
    return write(
        dense_graph(
            0.04,
            -7,
            [
                Dense(
                    rng.integers(-127, 128, (6, 5)).astype(np.int8),
                    [0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
                    0.2,
                    -128,
                    bias=np.arange(-3, 3, dtype=np.int32),
                    relu=True,
                ),
                Dense(rng.integers(-127, 128, (5, 6)).astype(np.int8), [0.125], 0.5, 9),
            ],
        )
    )


def test_converter_output_reads_as_a_chain_of_fully_connected_layers(
    converted: tuple[bytes, Model],
) -> None:
    _, model = converted
    assert model.version == 3
    assert [c.builtin_code for c in model.operator_codes] == [BuiltinOperator.FULLY_CONNECTED]
    assert [c.name for c in model.operator_codes] == ["FULLY_CONNECTED"]
    (graph,) = model.subgraphs
    assert len(graph.operators) == len(DIMS) - 1
    source = graph.inputs[0]
    for i, op in enumerate(graph.operators):
        assert op.inputs[0] == source
        x, w, b, y = (graph.tensors[t] for t in (*op.inputs, op.outputs[0]))
        assert (x.type, w.type, b.type, y.type) == (
            TensorType.INT8,
            TensorType.INT8,
            TensorType.INT32,
            TensorType.INT8,
        )
        assert x.shape == (1, DIMS[i]) and y.shape == (1, DIMS[i + 1])
        assert w.shape == (DIMS[i + 1], DIMS[i]) and b.shape == (DIMS[i + 1],)
        assert len(model.tensor_data(w)) == DIMS[i] * DIMS[i + 1]
        assert len(model.tensor_data(b)) == 4 * DIMS[i + 1]
        assert model.tensor_data(x) == b"" and model.tensor_data(y) == b""
        assert w.quantization is not None and len(w.quantization.scale) == DIMS[i + 1]
        assert set(w.quantization.zero_point) == {0}
        assert op.fully_connected is not None
        last = i == len(DIMS) - 2
        expected = ActivationFunction.NONE if last else ActivationFunction.RELU
        assert op.fully_connected.activation == expected
        source = op.outputs[0]
    assert graph.outputs == (source,)


def test_weights_dequantise_to_the_float_model(converted: tuple[bytes, Model]) -> None:
    """Dequantised weights match those of the same seeded model converted in float."""
    _, model = converted
    graph = model.subgraphs[0]
    float_model = read_model(keras_tflite(DIMS, quantize="none"))
    float_graph = float_model.subgraphs[0]
    for op, float_op in zip(graph.operators, float_graph.operators, strict=True):
        w = graph.tensors[op.inputs[1]]
        assert w.quantization is not None
        q = np.frombuffer(model.tensor_data(w), dtype=np.int8).reshape(w.shape)
        fw = float_graph.tensors[float_op.inputs[1]]
        assert fw.type == TensorType.FLOAT32 and fw.shape == w.shape
        real = np.frombuffer(float_model.tensor_data(fw), dtype="<f4").reshape(fw.shape)
        scale = np.asarray(w.quantization.scale)[:, None]
        assert np.all(np.abs(q * scale - real) <= scale * 0.5 + 1e-7)


def test_written_model_reads_back_field_by_field(written: bytes) -> None:
    model = read_model(written)
    (graph,) = model.subgraphs
    names = [t.name for t in graph.tensors]
    assert names == [
        "input",
        "dense_0/weights",
        "dense_0/bias",
        "dense_0/output",
        "dense_1/weights",
        "dense_1/output",
    ]
    assert graph.inputs == (0,) and graph.outputs == (5,)
    assert [op.inputs for op in graph.operators] == [(0, 1, 2), (3, 4)]
    w0 = graph.tensors[1]
    assert w0.quantization is not None
    assert w0.quantization.scale == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    assert graph.tensors[0].quantization is not None
    assert graph.tensors[0].quantization.zero_point == (-7,)
    assert graph.tensors[5].quantization is not None
    assert graph.tensors[5].quantization.zero_point == (9,)
    bias = np.frombuffer(model.tensor_data(graph.tensors[2]), dtype="<i4")
    assert bias.tolist() == [-3, -2, -1, 0, 1, 2]
    ops = graph.operators
    assert ops[0].fully_connected is not None and ops[1].fully_connected is not None
    assert ops[0].fully_connected.activation == ActivationFunction.RELU
    assert ops[1].fully_connected.activation == ActivationFunction.NONE


def test_every_truncation_is_refused_with_a_conversion_error(written: bytes) -> None:
    for length in range(len(written)):
        with pytest.raises(ConversionError):
            read_model(written[:length])


def test_a_file_that_is_not_tflite_is_named_as_such() -> None:
    with pytest.raises(ConversionError, match="file identifier"):
        read_model(b"\x10\x00\x00\x00VWM1" + bytes(64))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_bytes_read_or_raise_conversion_error_only(
    written: bytes, data: st.DataObject
) -> None:
    blob = bytearray(written)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(8, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ConversionError):
        read_model(bytes(blob))


def test_names_of_codes_fall_back_to_the_number() -> None:
    assert type_name(9) == "INT8" and type_name(77) == "TYPE_77"
    assert operator_name(3) == "CONV_2D" and operator_name(199) == "BUILTIN_199"
    assert activation_name(3) == "RELU6" and activation_name(42) == "ACTIVATION_42"
