"""Random but valid ``.vwm`` models, and small signed model packages made of them.

:func:`random_model` is the one builder of random int8 autoencoders: the engine tests
(against the integer reference), the OTA tests, the fuzzers' seed corpora, the Cortex-M4
image and the quality-gate tests all draw their models from it. Two kinds of
quantisation are drawn:

* realistic (the default): each layer's requantisation scale follows from its fan-in,
  as the TF Lite converter's would, so outputs spread over int8 instead of saturating,
  and zero points sit where a converter puts them (low for a ReLU output, near zero
  otherwise). Golden vectors then check something on every device.
* arbitrary (``shifts=(low, high)``): multipliers anywhere in ``[2**30, 2**31)``, shifts
  drawn from ``low..high`` and zero points anywhere in int8, so that property tests reach
  saturation, rounding ties and extreme shifts.

Golden outputs are computed by the C engine when the model is encoded
(:func:`vibewatch.edge.vwm.encode`), so every blob made here loads in the engine and
passes its own golden check. :func:`reseal` recomputes the header CRC of a blob changed
on purpose.

:func:`tiny_blob` and :func:`build_package` make the smallest complete signed package
(a 6-4-6 autoencoder, a stand-in ``.tflite``), for tests of the package, the registry and
the rollouts.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge.convert import quantize_multiplier
from vibewatch.edge.engine import Model
from vibewatch.edge.spec import STAT_NAMES, FeatureSpec
from vibewatch.edge.vwm import DenseLayer, VwmModel, encode
from vibewatch.errors import EdgeError
from vibewatch.models.package import ModelPackage, blob_fields, golden_vectors, write_package

__all__ = [
    "TFLITE_STAND_IN",
    "TINY_DIMS",
    "build_package",
    "factory_version",
    "golden_broken",
    "producer_manifest",
    "random_model",
    "reseal",
    "resign",
    "spec_for",
    "tiny_blob",
]

DEFAULT_SAMPLE_RATE_HZ: Final = 16_000
"""Sample rate of :func:`spec_for` unless told otherwise."""

_CRC_OFFSET: Final = 12
_VERSION_OFFSET: Final = 16  # the header's model version (vibewatch.edge.vwm)
_THRESHOLD_OFFSET: Final = 48  # the header's anomaly threshold, float32
"""Offset of the header's CRC-32 in a blob (``vw_model.h``): computed with these 4 bytes zero."""

TFLITE_STAND_IN: Final = b"\x1c\x00\x00\x00TFL3 int8 model stand-in"
"""The package does not parse the ``.tflite``: a few bytes stand for it."""

TINY_DIMS: Final = (6, 4, 6)
"""Layer widths of :func:`tiny_blob`: 1 band + 5 statistics = 6 features."""


def spec_for(
    n_features: int, *, sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ, window: int | None = None
) -> FeatureSpec:
    """A feature spec of ``n_features`` features: one-bin bands from bin 1, plus the statistics.

    Args:
        n_features: Bands plus the statistics (:data:`~vibewatch.edge.spec.STAT_NAMES`).
        sample_rate_hz: Sample rate.
        window: Window length; ``None`` for the smallest one whose spectrum holds the bands.

    Raises:
        ValueError: Fewer features than the statistics and one band.
        EdgeError: No window holds that many bands, or the spec is refused otherwise.
    """
    n_bands = n_features - len(STAT_NAMES)
    if n_bands < 1:
        raise ValueError(f"{n_features} features leave no band (at least {len(STAT_NAMES) + 1})")
    edges = tuple(range(1, n_bands + 2))
    if window is not None:
        return FeatureSpec(sample_rate_hz, window, edges)
    # The shortest window the C core accepts with these bands: it owns the limits.
    refusal = None
    for exponent in range(1, 17):
        try:
            return FeatureSpec(sample_rate_hz, 2**exponent, edges)
        except EdgeError as exc:
            refusal = exc
    assert refusal is not None
    raise refusal


def _requantisation(
    rng: np.random.Generator, in_dim: int, n_q: int, shifts: tuple[int, int] | None
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int8]]:
    """Multipliers and shifts of one layer, ``n_q`` of each (see the module docstring)."""
    if shifts is not None:
        low, high = shifts
        multiplier = rng.integers(2**30, 2**31, n_q).astype(np.int32)
        return multiplier, rng.integers(low, high + 1, n_q).astype(np.int8)
    # A sum of in_dim products of ~73 (|int8 weight|) and ~60 (|input - zero point|)
    # scaled to a spread of ~40: outputs then use int8 without most of them saturating.
    base = 40.0 / (math.sqrt(in_dim) * 73.0 * 60.0)
    pairs = [quantize_multiplier(float(r)) for r in base * rng.uniform(0.5, 2.0, n_q)]
    multiplier = np.array([m for m, _ in pairs], dtype=np.int32)
    return multiplier, np.array([s for _, s in pairs], dtype=np.int8)


def random_model(
    seed: int | np.random.Generator,
    dims: Sequence[int],
    *,
    spec: FeatureSpec | None = None,
    model_id: str = "random",
    version: int = 1,
    per_channel: bool | Sequence[bool] = True,
    relu: bool = True,
    shifts: tuple[int, int] | None = None,
    golden: int = 2,
    threshold: float = 1.0,
) -> VwmModel:
    """An int8 autoencoder of layer widths ``dims`` with random weights and quantisation.

    Args:
        seed: Seed, or the generator to draw from (the same seed gives the same model).
        dims: Layer widths, input first; the first and last are the number of features.
        spec: The feature spec; :func:`spec_for` ``(dims[0])`` when ``None``.
        model_id: Model id (``[A-Za-z0-9._-]{1,64}``).
        version: Model version.
        per_channel: Per-channel requantisation (one multiplier per output) or per-tensor,
            for every layer, or one flag per layer.
        relu: Whether the hidden layers have a fused ReLU; the last layer is linear.
        shifts: ``None`` for realistic quantisation; ``(low, high)`` for arbitrary
            quantisation with shifts in ``low..high`` (see the module docstring).
        golden: Number of random golden inputs; the encoder adds their exact outputs.
        threshold: Anomaly-score threshold.

    Raises:
        ValueError: ``dims`` is not an autoencoder of the spec's features, or
            ``per_channel`` has the wrong length.
    """
    rng = np.random.default_rng(seed)
    spec = spec_for(dims[0]) if spec is None else spec
    n = spec.n_features
    if len(dims) < 2 or dims[0] != n or dims[-1] != n:
        raise ValueError(f"dims {tuple(dims)} must start and end with the {n} features")
    n_layers = len(dims) - 1
    channels = [per_channel] * n_layers if isinstance(per_channel, bool) else list(per_channel)
    if len(channels) != n_layers:
        raise ValueError(f"{len(channels)} per_channel flags for {n_layers} layers")
    arbitrary = shifts is not None
    layers = []
    for k, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
        relu_here = relu and k < n_layers - 1
        if arbitrary:
            zero_point = int(rng.integers(-128, 128))
        elif relu_here:
            zero_point = int(rng.integers(-128, -60))
        else:
            zero_point = int(rng.integers(-20, 21))
        multiplier, shift = _requantisation(rng, in_dim, out_dim if channels[k] else 1, shifts)
        bias_bound = 20_000 if arbitrary else 5_000
        layers.append(
            DenseLayer(
                weights=rng.integers(-127, 128, (out_dim, in_dim)).astype(np.int8),
                bias=rng.integers(-bias_bound, bias_bound + 1, out_dim).astype(np.int32),
                multiplier=multiplier,
                shift=shift,
                output_zero_point=zero_point,
                act_min=zero_point if relu_here else -128,
                act_max=127,
            )
        )
    input_zero_point = int(rng.integers(-128, 128) if arbitrary else rng.integers(-20, 21))
    return VwmModel(
        model_id=model_id,
        version=version,
        spec=spec,
        input_scale=0.05,
        input_zero_point=input_zero_point,
        output_scale=0.05,
        output_zero_point=layers[-1].output_zero_point,
        input_mul=rng.uniform(0.5, 20.0, n).astype(np.float32),
        input_add=rng.uniform(-5.0, 5.0, n).astype(np.float32),
        threshold=threshold,
        layers=tuple(layers),
        golden_inputs=rng.integers(-128, 128, (golden, n)).astype(np.int8),
    )


def reseal(blob: bytes | bytearray) -> bytes:
    """``blob`` with its header CRC-32 recomputed: a well-formed blob, changed on purpose."""
    sealed = bytearray(blob)
    struct.pack_into("<I", sealed, _CRC_OFFSET, 0)
    struct.pack_into("<I", sealed, _CRC_OFFSET, zlib.crc32(sealed))
    return bytes(sealed)


def golden_broken(blob: bytes) -> bytes:
    """``blob`` with its last golden vector's expected output changed by one (resealed:
    the CRC is valid), a model whose golden check fails on the device."""
    changed = bytearray(blob)
    changed[-10] ^= 1  # output bytes of the last record: [-16:-4]
    return reseal(changed)


def tiny_blob(model_id: str = "pump", version: int = 1, seed: int = 0) -> bytes:
    """A small valid ``.vwm``: a :data:`TINY_DIMS` int8 autoencoder with random weights."""
    model = random_model(seed, TINY_DIMS, golden=4, threshold=0.75)
    return encode(dataclasses.replace(model, model_id=model_id, version=version))


def producer_manifest(vwm: bytes, seed: int = 0) -> dict[str, Any]:
    """What the training job hands to :func:`~vibewatch.models.package.write_package` for ``vwm``.

    Args:
        vwm: The blob.
        seed: Seed of the 8 golden inputs and the figure recorded in ``metrics``.
    """
    model = Model(vwm)
    inputs = np.random.default_rng(seed + 100).integers(-128, 128, (8, model.n_features))
    return {
        **blob_fields(model),
        "metrics": {"auc_int8": 0.995, "false_alarm_rate": 0.004, "seed": seed},
        "training_data": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-08T00:00:00Z"},
        "architecture": {"layers": list(TINY_DIMS)},
        "golden": golden_vectors(model, inputs),
    }


def build_package(
    directory: Path,
    key: Ed25519PrivateKey,
    *,
    model_id: str = "pump",
    version: int = 1,
    seed: int = 0,
) -> ModelPackage:
    """A complete signed package of a :func:`tiny_blob` model, written into ``directory``.

    Args:
        directory: Where the package is written (see ``write_package``).
        key: The offline signing key.
        model_id: Model id.
        version: Model version.
        seed: Seed of the weights and the golden inputs.
    """
    vwm = tiny_blob(model_id, version, seed)
    return write_package(
        directory,
        tflite=TFLITE_STAND_IN,
        vwm=vwm,
        manifest=producer_manifest(vwm, seed),
        private_key=key,
    )


def resign(directory: Path, key: Ed25519PrivateKey, manifest_text: bytes) -> None:
    """Replace the manifest of a package with ``manifest_text``, validly signed by ``key``."""
    (directory / "manifest.json").write_bytes(manifest_text)
    (directory / "manifest.sig").write_bytes(key.sign(manifest_text))


def factory_version(
    directory: Path, key: Ed25519PrivateKey, version: int, *, threshold: float | None = None
) -> ModelPackage:
    """The factory model as another version, packaged and signed with ``key`` into
    ``directory``: what a retrained model looks like to a rollout (same weights and
    golden vectors, the header's version, CRC and, when given, threshold changed)."""
    from vibewatch.edge.m4 import FACTORY_MODEL
    from vibewatch.models.package import MANIFEST, TFLITE

    source = FACTORY_MODEL.parent
    manifest = json.loads((source / MANIFEST).read_bytes())
    for added in ("format", "files"):
        del manifest[added]
    manifest["version"] = version
    blob = bytearray(FACTORY_MODEL.read_bytes())
    struct.pack_into("<I", blob, _VERSION_OFFSET, version)
    if threshold is not None:
        struct.pack_into("<f", blob, _THRESHOLD_OFFSET, threshold)
        manifest["threshold"] = float(np.float32(threshold))
    return write_package(
        directory,
        tflite=(source / TFLITE).read_bytes(),
        vwm=reseal(blob),
        manifest=manifest,
        private_key=key,
    )
