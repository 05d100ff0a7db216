"""``.tflite`` models for tests and benchmarks: written directly, or by the real TF Lite converter.

:func:`dense_graph` describes a chain of ``FULLY_CONNECTED`` layers with any weights,
scales and zero points; :func:`write` turns a :class:`Graph` into the bytes of a
``.tflite`` file (schema version 3, identifier ``TFL3``) that the TFLite Micro interpreter
runs. Tests change fields of the description (``dataclasses.replace``) to make hostile
variants: other operators, types, shapes, quantisation or options.

:func:`keras_tflite` and :func:`keras_conv_tflite` build small Keras models and convert them
with TensorFlow's own converter (full-integer int8 unless told otherwise); each model is
converted once per process.

Needs the ``dev`` extra: ``flatbuffers`` to write files, TensorFlow for the Keras models.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import flatbuffers  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from vibewatch.edge.tf_export import tensorflow

FULLY_CONNECTED = 9
FULLY_CONNECTED_OPTIONS = 8
INT8 = 9
INT32 = 2


@dataclass(frozen=True)
class TensorDef:
    """One tensor: constant when ``data`` is given, else computed at run time."""

    name: str
    shape: tuple[int, ...]
    type: int = INT8
    data: bytes | None = None
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    quantized_dimension: int = 0


@dataclass(frozen=True)
class OpDef:
    """One operator; ``options`` False leaves out the builtin options table."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    opcode: int = FULLY_CONNECTED
    activation: int = 0
    weights_format: int = 0
    options: bool = True


@dataclass(frozen=True)
class Graph:
    """A one-subgraph model (``extra_subgraphs`` adds empty ones)."""

    tensors: tuple[TensorDef, ...]
    operators: tuple[OpDef, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    extra_subgraphs: int = 0


@dataclass(frozen=True)
class Dense:
    """One layer of :func:`dense_graph`.

    ``weight_scales`` holds one scale (per tensor) or one per output (per channel);
    ``bias`` None leaves the bias input out, as the TF converter does for a zero bias.
    """

    weights: npt.NDArray[np.int8]
    weight_scales: Sequence[float]
    out_scale: float
    out_zero_point: int
    bias: npt.NDArray[np.int32] | None = None
    relu: bool = False
    weight_zero_points: Sequence[int] | None = field(default=None)


def dense_graph(in_scale: float, in_zero_point: int, layers: Sequence[Dense]) -> Graph:
    """The graph of an int8 chain of fully connected layers with batch 1."""
    n_in = int(layers[0].weights.shape[1])
    tensors = [TensorDef("input", (1, n_in), scale=(in_scale,), zero_point=(in_zero_point,))]
    operators = []
    current, scale = 0, in_scale
    for i, layer in enumerate(layers):
        out_dim, in_dim = (int(d) for d in layer.weights.shape)
        w_scales = tuple(float(s) for s in layer.weight_scales)
        zps = layer.weight_zero_points or (0,) * len(w_scales)
        tensors.append(
            TensorDef(
                f"dense_{i}/weights",
                (out_dim, in_dim),
                data=np.ascontiguousarray(layer.weights, dtype=np.int8).tobytes(),
                scale=w_scales,
                zero_point=tuple(zps),
            )
        )
        inputs = [current, len(tensors) - 1]
        if layer.bias is not None:
            b_scales = tuple(float(np.float32(scale) * np.float32(s)) for s in w_scales)
            tensors.append(
                TensorDef(
                    f"dense_{i}/bias",
                    (out_dim,),
                    type=INT32,
                    data=np.asarray(layer.bias, dtype="<i4").tobytes(),
                    scale=b_scales,
                    zero_point=(0,) * len(b_scales),
                )
            )
            inputs.append(len(tensors) - 1)
        tensors.append(
            TensorDef(
                f"dense_{i}/output",
                (1, out_dim),
                scale=(layer.out_scale,),
                zero_point=(layer.out_zero_point,),
            )
        )
        current, scale = len(tensors) - 1, layer.out_scale
        operators.append(OpDef(tuple(inputs), (current,), activation=int(layer.relu)))
    return Graph(tuple(tensors), tuple(operators), (0,), (current,))


def replace_tensor(graph: Graph, index: int, **changes: object) -> Graph:
    """``graph`` with fields of tensor ``index`` changed."""
    tensors = list(graph.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(graph, tensors=tuple(tensors))


def replace_operator(graph: Graph, index: int, **changes: object) -> Graph:
    """``graph`` with fields of operator ``index`` changed."""
    operators = list(graph.operators)
    operators[index] = dataclasses.replace(operators[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(graph, operators=tuple(operators))


def _ints(b: flatbuffers.Builder, values: Sequence[int], dtype: str = "<i4") -> int:
    return int(b.CreateNumpyVector(np.asarray(values, dtype=dtype)))


def _tensor(b: flatbuffers.Builder, t: TensorDef, buffer: int) -> int:
    quant = None
    if t.scale is not None:
        scale = b.CreateNumpyVector(np.asarray(t.scale, dtype="<f4"))
        zero = _ints(b, t.zero_point or (), "<i8")
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(2, scale, 0)
        b.PrependUOffsetTRelativeSlot(3, zero, 0)
        b.PrependInt32Slot(6, t.quantized_dimension, 0)
        quant = b.EndObject()
    name = b.CreateString(t.name)
    shape = _ints(b, t.shape)
    b.StartObject(8)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    b.PrependInt8Slot(1, t.type, 0)
    b.PrependUint32Slot(2, buffer, 0)
    b.PrependUOffsetTRelativeSlot(3, name, 0)
    if quant is not None:
        b.PrependUOffsetTRelativeSlot(4, quant, 0)
    return int(b.EndObject())


def _operator(b: flatbuffers.Builder, op: OpDef, opcode_index: int) -> int:
    options = None
    if op.options:
        b.StartObject(5)
        b.PrependInt8Slot(0, op.activation, 0)
        b.PrependInt8Slot(1, op.weights_format, 0)
        options = b.EndObject()
    inputs = _ints(b, op.inputs)
    outputs = _ints(b, op.outputs)
    b.StartObject(5)
    b.PrependUint32Slot(0, opcode_index, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    if options is not None:
        b.PrependUint8Slot(3, FULLY_CONNECTED_OPTIONS, 0)
        b.PrependUOffsetTRelativeSlot(4, options, 0)
    return int(b.EndObject())


def _table_vector(b: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _subgraph(b: flatbuffers.Builder, graph: Graph, opcodes: list[int]) -> int:
    tensors = [_tensor(b, t, i + 1) for i, t in enumerate(graph.tensors)]
    ops = [_operator(b, op, opcodes.index(op.opcode)) for op in graph.operators]
    tensor_vec = _table_vector(b, tensors)
    op_vec = _table_vector(b, ops)
    inputs = _ints(b, graph.inputs)
    outputs = _ints(b, graph.outputs)
    name = b.CreateString("main")
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, tensor_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, op_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, name, 0)
    return int(b.EndObject())


def _buffer(b: flatbuffers.Builder, data: bytes | None) -> int:
    vec = None
    if data:
        b.StartVector(1, len(data), 16)  # the schema's force_align: 16
        b.head -= len(data)
        b.Bytes[b.head : b.head + len(data)] = data
        vec = b.EndVector()
    b.StartObject(3)
    if vec is not None:
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
    return int(b.EndObject())


def write(graph: Graph) -> bytes:
    """The ``.tflite`` bytes of ``graph``: buffer 0 empty, then one buffer per tensor."""
    b = flatbuffers.Builder(1024)
    opcodes = sorted({op.opcode for op in graph.operators})
    codes = []
    for code in opcodes:
        b.StartObject(4)
        b.PrependInt8Slot(0, min(code, 127), 0)
        b.PrependInt32Slot(2, 1, 1)
        b.PrependInt32Slot(3, code, 0)
        codes.append(b.EndObject())
    buffers = [_buffer(b, None)] + [_buffer(b, t.data) for t in graph.tensors]
    main = _subgraph(b, graph, opcodes)
    subgraphs = [main] + [
        _subgraph(b, Graph((), (), (), ()), []) for _ in range(graph.extra_subgraphs)
    ]
    code_vec = _table_vector(b, codes)
    subgraph_vec = _table_vector(b, subgraphs)
    buffer_vec = _table_vector(b, buffers)
    description = b.CreateString("vibewatch test model")
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, code_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraph_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buffer_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def representative(n_features: int, count: int, seed: int) -> npt.NDArray[np.float32]:
    """Feature vectors of the representative distribution (standard normal), ``[count, n]``."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (count, n_features)).astype(np.float32)


def _convert(model: Any, n_features: int, *, quantize: str, per_channel: bool) -> bytes:
    """Convert a Keras model; ``quantize`` is ``int8``, ``int16x8`` or ``none``."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def dataset() -> Iterator[list[npt.NDArray[np.float32]]]:
            for row in representative(n_features, 100, seed=1):
                yield [row[None, :]]

        converter.representative_dataset = dataset
        if quantize == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
        converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


@functools.cache
def keras_tflite(
    dims: tuple[int, ...],
    *,
    hidden: str = "relu",
    output: str | None = None,
    per_channel: bool = True,
    zero_bias: bool = False,
    quantize: str = "int8",
    seed: int = 0,
) -> bytes:
    """A Keras stack of ``Dense`` layers ``dims[0] -> ... -> dims[-1]``, converted.

    Args:
        dims: Layer widths, input first.
        hidden: Activation of every layer but the last.
        output: Activation of the last layer.
        per_channel: Quantise weights per output channel (else per tensor).
        zero_bias: Set every bias to zero (the converter then drops the bias inputs);
            otherwise biases are random and non-zero.
        quantize: ``int8`` (int8 input and output), ``int16x8`` (int16 activations, int8
            weights) or ``none`` (float).
        seed: Seed of the weights and biases.
    """
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = tf.keras.Input(shape=(dims[0],), batch_size=1)
    x = inputs
    for i, width in enumerate(dims[1:]):
        last = i == len(dims) - 2
        x = tf.keras.layers.Dense(width, activation=output if last else hidden)(x)
    model = tf.keras.Model(inputs, x)
    for layer in model.layers[1:]:
        kernel, bias = layer.get_weights()
        bias = np.zeros_like(bias) if zero_bias else rng.normal(0.0, 0.2, bias.shape)
        layer.set_weights([kernel, bias.astype(np.float32)])
    return _convert(model, dims[0], quantize=quantize, per_channel=per_channel)


@functools.cache
def keras_conv_tflite() -> bytes:
    """A full-integer int8 model whose first operator is a 1-D convolution."""
    tf = tensorflow()
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(shape=(16,), batch_size=1)
    x = tf.keras.layers.Reshape((16, 1))(inputs)
    x = tf.keras.layers.Conv1D(4, 3, activation="relu")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(16)(x)
    return _convert(tf.keras.Model(inputs, x), 16, quantize="int8", per_channel=True)
