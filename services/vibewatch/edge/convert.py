"""Conversion of a full-integer int8 ``.tflite`` autoencoder into a ``.vwm`` blob.

The accepted models are what the TF Lite converter makes of a Keras stack of ``Dense``
layers with full-integer quantisation (int8 input and output): one subgraph that is a chain
of ``FULLY_CONNECTED`` operators with fused ``NONE`` or ``RELU`` activation, int8 weights
quantised per tensor or per output channel with zero points 0, an optional int32 bias (the
converter drops an all-zero bias), and int8 activations of shape ``[1, n]``. Anything else is
refused with :class:`~vibewatch.errors.ConversionError` naming the operator, tensor, type
or shape.

Every integer parameter is computed as TFLite Micro computes it when it prepares the
model, so that the engine reproduces the interpreter's output bytes:

* the effective scale ``input_scale * weight_scale / output_scale`` in double precision,
  each float32 scale widened to double first (one per output channel when per-channel);
* :func:`quantize_multiplier` splits it into a Q31 multiplier and a power-of-two shift;
* :func:`activation_range` clamps to ``[max(-128, zp), 127]`` for ``RELU``, to the full
  int8 range for ``NONE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vibewatch.edge.spec import FeatureSpec
from vibewatch.edge.tflite import (
    BUILTIN_OPTIONS_FULLY_CONNECTED,
    ActivationFunction,
    BuiltinOperator,
    FullyConnectedOptions,
    Model,
    Operator,
    OperatorCode,
    Quantization,
    Tensor,
    TensorType,
    WeightsFormat,
    activation_name,
    read_model,
    type_name,
)
from vibewatch.edge.vwm import MAX_BIAS, MAX_DIM, MAX_LAYERS, DenseLayer, VwmModel, encode
from vibewatch.errors import ConversionError

#: Largest left shift the engine applies (a larger one would overflow int32).
MAX_SHIFT = 30
#: Relative tolerance of the bias scale against input scale times weight scale (TFLite's).
BIAS_SCALE_TOLERANCE = 1e-6
INT8_MIN = -128
INT8_MAX = 127


@dataclass(frozen=True)
class QuantizedModel:
    """The chain of layers of a converted model and its input and output quantisation.

    Attributes:
        layers: The layers in execution order.
        in_scale: Scale of the int8 model input.
        in_zero_point: Zero point of the int8 model input.
        out_scale: Scale of the int8 model output.
        out_zero_point: Zero point of the int8 model output.
    """

    layers: tuple[DenseLayer, ...]
    in_scale: float
    in_zero_point: int
    out_scale: float
    out_zero_point: int


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into a Q31 multiplier and a shift.

    ``real ~= mult * 2**(shift - 31)`` with ``mult`` in ``[2**30, 2**31)``, exactly as
    TFLite's ``QuantizeMultiplier``: the significand from ``frexp`` times ``2**31`` rounded
    half away from zero; a significand that rounds up to ``2**31`` is halved and the shift
    raised by one; a shift below -31 (every result bit shifted out) becomes ``(0, 0)``.

    Args:
        real: The effective scale, finite and ``>= 0``.

    Returns:
        ``(mult, shift)``; ``(0, 0)`` for 0 and for multipliers below about ``2**-32``.
    """
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    scaled = significand * 2.0**31  # exact: a power-of-two product
    mult = math.floor(scaled)
    if scaled - mult >= 0.5:  # half away from zero (Python's round() is half to even)
        mult += 1
    if mult == 2**31:
        mult //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return mult, shift


def activation_range(activation: int, zero_point: int) -> tuple[int, int]:
    """Clamp range of an int8 output with fused ``activation`` (``NONE`` or ``RELU``).

    As TFLite's ``CalculateActivationRangeQuantized``: ``RELU`` clamps below at the
    quantised real 0, which is the output zero point; ``NONE`` keeps the int8 range.
    """
    if activation == ActivationFunction.RELU:
        return max(INT8_MIN, zero_point), INT8_MAX
    if activation == ActivationFunction.NONE:
        return INT8_MIN, INT8_MAX
    raise ConversionError(f"fused activation {activation_name(activation)} is not supported")


def read_layers(tflite: bytes) -> QuantizedModel:
    """The integer layers of a dense int8 ``.tflite`` model.

    Args:
        tflite: The ``.tflite`` file.

    Returns:
        Weights, biases, requantisation and activation parameters of every layer.

    Raises:
        ConversionError: The model is not a chain of int8 ``FULLY_CONNECTED`` operators as
            described in the module docstring; the message names what is not.
    """
    model = read_model(tflite)
    if len(model.subgraphs) != 1:
        raise ConversionError(f"the model has {len(model.subgraphs)} subgraphs, expected 1")
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ConversionError(
            f"the graph has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs, "
            "expected 1 and 1"
        )
    if not 1 <= len(graph.operators) <= MAX_LAYERS:
        raise ConversionError(
            f"the graph has {len(graph.operators)} operators, expected 1..{MAX_LAYERS}"
        )

    def tensor(index: int, role: str) -> Tensor:
        if not 0 <= index < len(graph.tensors):
            raise ConversionError(
                f"{role} is tensor {index}, the graph has {len(graph.tensors)} tensors"
            )
        found = graph.tensors[index]
        if found.is_sparse:
            raise ConversionError(f"{_name(found, role)} is sparse")
        if found.external_buffer:
            raise ConversionError(f"{_name(found, role)} keeps its data in an external file")
        return found

    foreign = [
        f"{_operator_code(model, op, i).name} (operator {i})"
        for i, op in enumerate(graph.operators)
        if _operator_code(model, op, i).builtin_code != BuiltinOperator.FULLY_CONNECTED
    ]
    if foreign:
        raise ConversionError(
            f"unsupported operators {', '.join(foreign)}: only FULLY_CONNECTED is supported"
        )
    for i, op in enumerate(graph.operators):
        _check_options(op, f"operator {i}")
    index = graph.inputs[0]
    current = tensor(index, "the model input")
    in_scale, in_zero_point = _activation_quantization(model, current, "the model input")
    seen = {index}
    layers = []
    for i, op in enumerate(graph.operators):
        where = f"operator {i}"
        if op.inputs[0] != index or len(op.outputs) != 1 or op.outputs[0] in seen:
            raise ConversionError(
                f"the graph is not a chain: {where} reads tensor {op.inputs[0]} and writes "
                f"tensors {list(op.outputs)}, expected to read tensor {index} and write one "
                "new tensor"
            )
        bias_index = op.inputs[2] if len(op.inputs) == 3 else -1
        index = op.outputs[0]
        seen.add(index)
        output = tensor(index, f"the output of {where}")
        layers.append(
            _layer(
                model,
                where,
                current,
                tensor(op.inputs[1], f"the weights of {where}"),
                None if bias_index < 0 else tensor(bias_index, f"the bias of {where}"),
                output,
                op.fully_connected or FullyConnectedOptions(0, 0, False, 0),
            )
        )
        current = output
    if index != graph.outputs[0]:
        raise ConversionError(
            f"the graph is not a chain: its output is tensor {graph.outputs[0]}, the last "
            f"operator writes tensor {index}"
        )
    out_scale, out_zero_point = _activation_quantization(model, current, "the model output")
    return QuantizedModel(tuple(layers), in_scale, in_zero_point, out_scale, out_zero_point)


def _name(tensor: Tensor, role: str) -> str:
    return f"{role} (tensor {tensor.name!r})"


def _operator_code(model: Model, op: Operator, i: int) -> OperatorCode:
    if not 0 <= op.opcode_index < len(model.operator_codes):
        raise ConversionError(
            f"operator {i} has operator code {op.opcode_index}, "
            f"the model has {len(model.operator_codes)}"
        )
    return model.operator_codes[op.opcode_index]


def _check_options(op: Operator, where: str) -> None:
    """Refuse a ``FULLY_CONNECTED`` that is not plain int8 with NONE or RELU."""
    if len(op.inputs) not in (2, 3):
        raise ConversionError(f"{where} (FULLY_CONNECTED) has {len(op.inputs)} inputs")
    if op.options_type not in (0, BUILTIN_OPTIONS_FULLY_CONNECTED):
        raise ConversionError(f"{where} (FULLY_CONNECTED) has options of type {op.options_type}")
    options = op.fully_connected
    if options is None:
        return
    if options.weights_format != WeightsFormat.DEFAULT:
        try:
            fmt = WeightsFormat(options.weights_format).name
        except ValueError:
            fmt = str(options.weights_format)
        raise ConversionError(f"{where} (FULLY_CONNECTED) has weights format {fmt}")
    if options.activation not in (ActivationFunction.NONE, ActivationFunction.RELU):
        raise ConversionError(
            f"{where} (FULLY_CONNECTED) has fused activation "
            f"{activation_name(options.activation)}, expected NONE or RELU"
        )


def _scales(quantization: Quantization, what: str) -> tuple[float, ...]:
    for s in quantization.scale:
        if not (math.isfinite(s) and s > 0.0):
            raise ConversionError(f"{what} has scale {s}, expected a finite positive number")
    return quantization.scale


def _quantization(tensor: Tensor, what: str) -> Quantization:
    q = tensor.quantization
    if q is None or not q.scale:
        raise ConversionError(f"{what} is not quantised")
    if q.has_details:
        raise ConversionError(f"{what} uses a custom quantisation scheme")
    if q.zero_point and len(q.zero_point) != len(q.scale):
        raise ConversionError(
            f"{what} has {len(q.scale)} scales and {len(q.zero_point)} zero points"
        )
    return q


def _activation_quantization(model: Model, tensor: Tensor, role: str) -> tuple[float, int]:
    """Check an int8 activation tensor of shape [1, n]; its (scale, zero point)."""
    what = _name(tensor, role)
    if tensor.type != TensorType.INT8:
        raise ConversionError(f"{what} has type {type_name(tensor.type)}, expected INT8")
    if len(tensor.shape) != 2 or tensor.shape[0] != 1:
        raise ConversionError(f"{what} has shape {list(tensor.shape)}, expected [1, n]")
    if not 1 <= tensor.shape[1] <= MAX_DIM:
        raise ConversionError(f"{what} has shape {list(tensor.shape)}, n must be 1..{MAX_DIM}")
    if model.tensor_data(tensor):
        raise ConversionError(f"{what} is a constant")
    q = _quantization(tensor, what)
    if len(q.scale) != 1:
        raise ConversionError(f"{what} has {len(q.scale)} scales, expected 1")
    zero_point = q.zero_point[0] if q.zero_point else 0
    if not INT8_MIN <= zero_point <= INT8_MAX:
        raise ConversionError(f"{what} has zero point {zero_point}, outside int8")
    return _scales(q, what)[0], zero_point


def _constant(model: Model, tensor: Tensor, what: str, dtype: str) -> npt.NDArray[np.generic]:
    """The data of a constant tensor, checked against its shape."""
    buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
    if buffer is not None and buffer.offset > 1:
        raise ConversionError(f"{what} keeps its data outside the flatbuffer")
    data = model.tensor_data(tensor)
    item = np.dtype(dtype)
    count = math.prod(tensor.shape)
    if len(data) != count * item.itemsize:
        raise ConversionError(
            f"{what} holds {len(data)} bytes, shape {list(tensor.shape)} needs "
            f"{count * item.itemsize}"
        )
    return np.frombuffer(data, dtype=item).reshape(tensor.shape)


def _layer(
    model: Model,
    where: str,
    source: Tensor,
    weights: Tensor,
    bias: Tensor | None,
    output: Tensor,
    options: FullyConnectedOptions,
) -> DenseLayer:
    in_scale, _ = _activation_quantization(model, source, f"the input of {where}")
    out_scale, out_zero_point = _activation_quantization(model, output, f"the output of {where}")
    if options.quantized_bias_type not in (TensorType.FLOAT32, TensorType.INT32):
        raise ConversionError(
            f"{where} (FULLY_CONNECTED) has bias type "
            f"{type_name(options.quantized_bias_type)}, expected INT32"
        )
    in_dim, out_dim = source.shape[1], output.shape[1]

    what = _name(weights, f"the weights of {where}")
    if weights.type != TensorType.INT8:
        raise ConversionError(f"{what} have type {type_name(weights.type)}, expected INT8")
    if list(weights.shape) != [out_dim, in_dim]:
        raise ConversionError(
            f"{what} have shape {list(weights.shape)}, expected [{out_dim}, {in_dim}]"
        )
    wq = _quantization(weights, what)
    if any(wq.zero_point):
        raise ConversionError(f"{what} have non-zero zero points, expected symmetric int8")
    per_channel = len(wq.scale) > 1
    if per_channel and (len(wq.scale) != out_dim or wq.quantized_dimension != 0):
        raise ConversionError(
            f"{what} have {len(wq.scale)} scales along dimension {wq.quantized_dimension}, "
            f"expected 1 or {out_dim} along dimension 0"
        )
    w_scales = _scales(wq, what)
    product = [in_scale * s for s in w_scales]

    if bias is None:
        bias_values = np.zeros(out_dim, dtype=np.int32)
    else:
        what = _name(bias, f"the bias of {where}")
        if bias.type != TensorType.INT32:
            raise ConversionError(f"{what} has type {type_name(bias.type)}, expected INT32")
        if list(bias.shape) != [out_dim]:
            raise ConversionError(f"{what} has shape {list(bias.shape)}, expected [{out_dim}]")
        b_scales = _scales(_quantization(bias, what), what)
        if len(b_scales) != len(product) or any(
            abs(p - b) > BIAS_SCALE_TOLERANCE * min(p, b)
            for p, b in zip(product, b_scales, strict=True)
        ):
            raise ConversionError(f"{what} has scales that are not input scale times weight scale")
        bias_values = _constant(model, bias, what, "<i4").astype(np.int32)
        too_large = np.flatnonzero(np.abs(bias_values.astype(np.int64)) > MAX_BIAS)
        if len(too_large):
            index = int(too_large[0])
            raise ConversionError(
                f"{what} has {int(bias_values[index])} at {index}, beyond the engine's +-{MAX_BIAS}"
            )

    mult, shift = [], []
    for p in product:
        effective = p / out_scale
        if not math.isfinite(effective):
            raise ConversionError(f"{where} has an effective scale {effective}")
        m, s = quantize_multiplier(effective)
        if s > MAX_SHIFT:
            raise ConversionError(
                f"{where} has an effective scale {effective:.6g} of 2**{s - 1} or more"
            )
        mult.append(m)
        shift.append(s)
    act_min, act_max = activation_range(options.activation, out_zero_point)
    return DenseLayer(
        weights=_constant(model, weights, _name(weights, f"the weights of {where}"), "i1").astype(
            np.int8
        ),
        bias=bias_values,
        multiplier=np.array(mult, dtype=np.int32),
        shift=np.array(shift, dtype=np.int8),
        output_zero_point=out_zero_point,
        act_min=act_min,
        act_max=act_max,
    )


def convert(
    tflite: bytes,
    spec: FeatureSpec,
    *,
    model_id: str,
    version: int,
    mean: npt.ArrayLike,
    std: npt.ArrayLike,
    threshold: float,
    golden_inputs: npt.ArrayLike = (),
    threshold_ceiling: float = 0.0,
) -> bytes:
    """Convert a dense int8 ``.tflite`` autoencoder into a ``.vwm`` blob.

    The per-feature normalisation ``(x - mean) / std`` is folded into the input
    quantisation: ``q = round(x * mul + add)`` with ``mul = 1 / (std * input_scale)`` and
    ``add = input_zero_point - mean / (std * input_scale)``, computed in double precision
    and stored as float32.

    Args:
        tflite: The ``.tflite`` file (full-integer int8, see the module docstring).
        spec: The feature spec; the model takes and gives ``spec.n_features`` values.
        model_id: Model id, :data:`~vibewatch.protocol.ID_PATTERN`.
        version: Model version.
        mean: Per-feature mean of the training features.
        std: Per-feature standard deviation of the training features (finite, > 0).
        threshold: Anomaly-score threshold.
        golden_inputs: int8 ``[k, n_features]`` quantised inputs; the blob records the C
            engine's exact outputs and scores for them.
        threshold_ceiling: The highest threshold a device may calibrate itself to; 0 is
            ``threshold`` (it may lower its threshold, never raise it).

    Returns:
        The blob, accepted by the firmware's parser.

    Raises:
        ConversionError: The model or the normalisation cannot be represented.
        EdgeError: The blob fields break a limit of the format (id, golden count).
    """
    model = read_layers(tflite)
    n = spec.n_features
    in_dim = int(model.layers[0].weights.shape[1])
    out_dim = int(model.layers[-1].weights.shape[0])
    if in_dim != n or out_dim != n:
        raise ConversionError(
            f"the model maps {in_dim} inputs to {out_dim} outputs, the feature spec has {n} "
            "features"
        )
    mean64 = _per_feature(mean, n, "mean")
    std64 = _per_feature(std, n, "std")
    if np.any(std64 <= 0.0):
        raise ConversionError(f"std has a value <= 0: {std64.tolist()}")
    step = std64 * model.in_scale
    with np.errstate(over="ignore"):
        mul = (1.0 / step).astype(np.float32)
        add = (model.in_zero_point - mean64 / step).astype(np.float32)
    if not (np.all(np.isfinite(mul)) and np.all(np.isfinite(add))):
        raise ConversionError("the normalisation folded into the input scale overflows float32")
    return encode(
        VwmModel(
            model_id=model_id,
            version=version,
            spec=spec,
            input_scale=model.in_scale,
            input_zero_point=model.in_zero_point,
            output_scale=model.out_scale,
            output_zero_point=model.out_zero_point,
            input_mul=mul,
            input_add=add,
            threshold=threshold,
            layers=model.layers,
            golden_inputs=np.asarray(golden_inputs, dtype=np.int8).reshape(-1, n),
            threshold_ceiling=threshold_ceiling,
        )
    )


def _per_feature(values: npt.ArrayLike, n: int, what: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise ConversionError(f"{what} must be {n} finite numbers, got shape {array.shape}")
    return array
