"""Writing and reading the header of ``.vwm`` model blobs (format: ``vw_model.h``).

:func:`encode` lays out a :class:`VwmModel` exactly as the firmware reads it: the 64-byte
header with CRC-32, the model id, the FFT-bin band edges, the input affine (feature
normalisation folded into input quantisation), the layers with their weights in 4x4 blocks,
and golden vectors whose outputs and scores are computed by the C engine itself.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vibewatch.edge.spec import FeatureSpec
from vibewatch.errors import EdgeError
from vibewatch.protocol import ID_PATTERN, ID_RE, MODEL_VERSION_MAX

MAGIC = b"VWM1"
FORMAT_VERSION = 1
HEADER_BYTES = 64
MAX_LAYERS = 16
MAX_DIM = 2048
MAX_GOLDEN = 64
#: Largest |bias| (``VW_MODEL_MAX_BIAS``): keeps every sum of the engine below 2**30.
MAX_BIAS = 2**30 - 2**27
_HEADER = struct.Struct("<4sHHIIIIHHHHfififHBBfI")
_LAYER = struct.Struct("<HHbbBBiI")


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class DenseLayer:
    """One int8 fully connected layer with TFLite's quantisation parameters.

    Attributes:
        weights: int8 ``[out_dim, in_dim]`` (weight zero point 0).
        bias: int32 ``[out_dim]``, already in units of ``input_scale * weight_scale``.
        multiplier: int32 fixed-point multipliers, one (per tensor) or ``out_dim``.
        shift: exponents matching ``multiplier`` (positive: left shift).
        output_zero_point: zero point of this layer's output (the next layer's input).
        act_min: lower end of the fused activation (ReLU: the output zero point).
        act_max: upper end of the fused activation.
    """

    weights: npt.NDArray[np.int8]
    bias: npt.NDArray[np.int32]
    multiplier: npt.NDArray[np.int32]
    shift: npt.NDArray[np.int8]
    output_zero_point: int
    act_min: int = -128
    act_max: int = 127


@dataclass(frozen=True)
class VwmModel:
    """Everything a ``.vwm`` blob holds, in Python types.

    Attributes:
        model_id: :data:`~vibewatch.protocol.ID_PATTERN`.
        version: Model version, ``0..``:data:`~vibewatch.protocol.MODEL_VERSION_MAX`.
        spec: The feature spec the model was trained on.
        input_scale: Scale of the quantised (normalised) input.
        input_zero_point: Zero point of the quantised input.
        output_scale: Scale of the reconstruction.
        output_zero_point: Zero point of the reconstruction.
        input_mul: float32 ``[n_features]``: ``q = round(x * input_mul + input_add)``.
        input_add: float32 ``[n_features]``.
        threshold: Anomaly-score threshold.
        layers: The fully connected layers, first to last.
        golden_inputs: int8 ``[k, n_features]`` quantised inputs whose exact outputs and
            scores the device must reproduce before it activates the model.
        threshold_ceiling: The highest threshold a device may set itself by calibration;
            0 means ``threshold`` (a device may lower its threshold, never raise it).
    """

    model_id: str
    version: int
    spec: FeatureSpec
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    input_mul: npt.NDArray[np.float32]
    input_add: npt.NDArray[np.float32]
    threshold: float
    layers: tuple[DenseLayer, ...]
    golden_inputs: npt.NDArray[np.int8] = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.int8)
    )
    threshold_ceiling: float = 0.0


@dataclass(frozen=True)
class VwmHeader:
    """The header fields of a blob (not validated: :class:`vibewatch.edge.Model` does that)."""

    model_id: str
    version: int
    spec: FeatureSpec
    threshold: float
    golden_count: int
    n_layers: int
    total_bytes: int
    threshold_ceiling: float = 0.0


def _check(model: VwmModel) -> None:
    n = model.spec.n_features
    if not ID_RE.fullmatch(model.model_id):
        raise EdgeError("format", f"model id {model.model_id!r} is not {ID_PATTERN}")
    if not 0 <= model.version <= MODEL_VERSION_MAX:
        raise EdgeError("format", f"model version {model.version} is not a 32-bit unsigned")
    if not 1 <= len(model.layers) <= MAX_LAYERS:
        raise EdgeError("unsupported", f"{len(model.layers)} layers, expected 1..{MAX_LAYERS}")
    dim = n
    for i, layer in enumerate(model.layers):
        out_dim, in_dim = layer.weights.shape
        if in_dim != dim:
            raise EdgeError("format", f"layer {i} takes {in_dim} inputs, the previous gives {dim}")
        if out_dim > MAX_DIM:
            raise EdgeError("unsupported", f"layer {i} has {out_dim} outputs (max {MAX_DIM})")
        if np.abs(np.asarray(layer.bias, dtype=np.int64)).max(initial=0) > MAX_BIAS:
            raise EdgeError("format", f"layer {i} has a bias beyond +-{MAX_BIAS}")
        if len(layer.multiplier) not in (1, out_dim) or len(layer.shift) != len(layer.multiplier):
            raise EdgeError("format", f"layer {i}: multipliers/shifts do not match {out_dim}")
        dim = out_dim
    if dim != n:
        raise EdgeError("format", f"the last layer gives {dim} outputs, the spec has {n} features")
    if model.golden_inputs.size and model.golden_inputs.shape[1] != n:
        raise EdgeError("format", f"golden inputs of shape {model.golden_inputs.shape}")
    if len(model.golden_inputs) > MAX_GOLDEN:
        raise EdgeError("unsupported", f"{len(model.golden_inputs)} golden vectors (max 64)")


def _blocked(weights: npt.NDArray[np.int8]) -> bytes:
    """Weights ``[out, in]`` zero-padded to multiples of 4, in 4x4 blocks (``vw_model.h``)."""
    out_dim, in_dim = weights.shape
    padded = np.zeros((_pad4(out_dim), _pad4(in_dim)), dtype=np.int8)
    padded[:out_dim, :in_dim] = weights
    blocks = padded.reshape(_pad4(out_dim) // 4, 4, _pad4(in_dim) // 4, 4).transpose(0, 2, 1, 3)
    return blocks.tobytes()


def _padded(array: npt.NDArray[np.generic], length: int) -> bytes:
    out = np.zeros(length, dtype=array.dtype)
    out[: len(array)] = array
    return out.tobytes()


def _layer_bytes(layer: DenseLayer) -> bytes:
    out_dim, _ = layer.weights.shape
    per_channel = len(layer.multiplier) == out_dim and out_dim > 1
    n_q = _pad4(out_dim) if per_channel else 1
    return b"".join(
        [
            _LAYER.pack(
                layer.weights.shape[1],
                out_dim,
                layer.act_min,
                layer.act_max,
                int(per_channel),
                0,
                layer.output_zero_point,
                0,
            ),
            _blocked(np.asarray(layer.weights, dtype=np.int8)),
            _padded(np.asarray(layer.bias, dtype="<i4"), _pad4(out_dim)),
            _padded(np.asarray(layer.multiplier, dtype="<i4"), n_q),
            _padded(np.asarray(layer.shift, dtype=np.int8), _pad4(n_q)),
        ]
    )


def _golden_bytes(
    inputs: npt.NDArray[np.int8], outputs: npt.NDArray[np.int8], scores: npt.NDArray[np.float32]
) -> bytes:
    n = inputs.shape[1] if inputs.size else 0
    return b"".join(
        _padded(i, _pad4(n)) + _padded(o, _pad4(n)) + np.float32(s).astype("<f4").tobytes()
        for i, o, s in zip(inputs, outputs, scores, strict=True)
    )


def _assemble(model: VwmModel, golden: bytes, golden_count: int) -> bytes:
    spec = model.spec
    n = spec.n_features
    model_id = model.model_id.encode()
    body = b"".join(
        [
            model_id + bytes(_pad4(len(model_id)) - len(model_id)),
            _padded(np.asarray(spec.band_bins, dtype="<u2"), _pad4(2 * spec.n_bands + 2) // 2),
            np.asarray(model.input_mul, dtype="<f4").reshape(n).tobytes(),
            np.asarray(model.input_add, dtype="<f4").reshape(n).tobytes(),
            *(_layer_bytes(layer) for layer in model.layers),
            golden,
        ]
    )
    total = HEADER_BYTES + len(body)
    header = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        HEADER_BYTES,
        total,
        0,
        model.version,
        spec.sample_rate_hz,
        spec.window,
        spec.n_bands,
        n,
        len(model.layers),
        model.input_scale,
        model.input_zero_point,
        model.output_scale,
        model.output_zero_point,
        model.threshold,
        golden_count,
        len(model_id),
        0,
        model.threshold_ceiling,
        0,
    )
    blob = bytearray(header + body)
    struct.pack_into("<I", blob, 12, zlib.crc32(blob))
    return bytes(blob)


def encode(model: VwmModel) -> bytes:
    """The ``.vwm`` blob of ``model``, with golden outputs computed by the C engine.

    Raises:
        EdgeError: the model does not fit the format (dims, ids, limits) or the firmware
            refuses the result (``vibewatch.edge.Model`` validation).
    """
    from vibewatch.edge.engine import Model  # the engine reads blobs: import on use

    _check(model)
    bare = _assemble(model, b"", 0)
    engine = Model(bare)
    inputs = np.asarray(model.golden_inputs, dtype=np.int8).reshape(-1, model.spec.n_features)
    if not len(inputs):
        return bare
    outputs, scores = engine.run(inputs)
    return _assemble(model, _golden_bytes(inputs, outputs, scores), len(inputs))


def decode_header(blob: bytes) -> VwmHeader:
    """Read the header fields and band edges of a blob (no validation beyond sizes)."""
    if len(blob) < HEADER_BYTES or blob[:4] != MAGIC:
        raise EdgeError("magic", f"not a .vwm blob: starts with {blob[:4]!r}")
    f = _HEADER.unpack_from(blob)
    total, version, rate, window, n_bands = f[3], f[5], f[6], f[7], f[8]
    n_layers, threshold, golden_count, id_len = f[10], f[15], f[16], f[17]
    id_end = HEADER_BYTES + id_len
    bins_at = HEADER_BYTES + _pad4(id_len)
    bins = struct.unpack_from(f"<{n_bands + 1}H", blob, bins_at)
    return VwmHeader(
        model_id=blob[HEADER_BYTES:id_end].decode("ascii", "replace"),
        version=version,
        spec=FeatureSpec(rate, window, bins),
        threshold=threshold,
        golden_count=golden_count,
        n_layers=n_layers,
        total_bytes=total,
        threshold_ceiling=f[19],
    )
