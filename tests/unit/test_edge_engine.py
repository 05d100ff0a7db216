"""The int8 engine and the .vwm parser, through the C core (vibewatch.edge)."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch.edge.engine import Model
from vibewatch.edge.spec import STAT_NAMES
from vibewatch.edge.vwm import MAX_BIAS, VwmModel, encode
from vibewatch.errors import EdgeError
from vibewatch.testing.models import random_model, reseal

from . import engine_reference


@pytest.fixture(scope="module")
def small() -> tuple[VwmModel, bytes]:
    model = random_model(1, [36, 32, 8, 32, 36], model_id="test-ae", version=7, golden=4)
    return model, encode(model)


def test_engine_matches_the_integer_reference_and_reports_its_needs(
    small: tuple[VwmModel, bytes],
) -> None:
    model, blob = small
    engine = Model(blob)
    q = np.random.default_rng(2).integers(-128, 128, (20, 36)).astype(np.int8)
    out, scores = engine.run(q)
    for row, y, s in zip(q, out, scores, strict=True):
        ref_y, ref_s = engine_reference.run(model, row)
        assert y.tolist() == ref_y
        assert s == ref_s
    assert engine.macs == 36 * 32 + 32 * 8 + 8 * 32 + 32 * 36
    # int16 quantised input (36) and one ping-pong pair of the widest hidden layer (32)
    assert engine.ram_bytes == 2 * (36 + 2 * 32)
    assert (engine.model_id, engine.version, engine.golden_count) == ("test-ae", 7, 4)
    engine.check_golden()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dims=st.lists(st.integers(1, 70), min_size=0, max_size=3),
    n_bands=st.integers(1, 40),
    per_channel=st.booleans(),
    shifts=st.sampled_from([(-31, -20), (-12, -5), (-3, 2), (0, 4)]),
)
def test_any_shape_and_quantisation_matches_the_reference(
    seed: int, dims: list[int], n_bands: int, per_channel: bool, shifts: tuple[int, int]
) -> None:
    rng = np.random.default_rng(seed)
    n = n_bands + len(STAT_NAMES)
    model = random_model(rng, [n, *dims, n], per_channel=per_channel, shifts=shifts, golden=1)
    engine = Model(encode(model))
    q = rng.integers(-128, 128, (3, n)).astype(np.int8)
    out, scores = engine.run(q)
    for row, y, s in zip(q, out, scores, strict=True):
        ref_y, ref_s = engine_reference.run(model, row)
        assert y.tolist() == ref_y
        assert s == ref_s


def test_quantisation_rounds_half_to_even_and_saturates(small: tuple[VwmModel, bytes]) -> None:
    model, _ = small
    plain = dataclasses.replace(
        model,
        input_mul=np.ones(36, np.float32),
        input_add=np.zeros(36, np.float32),
        golden_inputs=np.zeros((0, 36), np.int8),
    )
    engine = Model(encode(plain))
    x = np.zeros(36, np.float32)
    x[:12] = [0.5, -0.5, 1.5, -2.5, 0.49999997, 126.6, 1e30, -1e30, -128.4, 3.0, 2.5000002, 127.5]
    assert engine.quantize(x)[0, :12].tolist() == [0, 0, 2, -2, 0, 127, 127, -128, -128, 3, 3, 127]
    assert engine.quantize(x)[0].tolist() == np.clip(np.rint(x), -128, 127).astype(int).tolist()
    scores = engine.score(np.stack([x, x]))
    _, expected = engine.run(engine.quantize(x))
    assert scores.tolist() == [expected[0], expected[0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(small: tuple[VwmModel, bytes], bad: float) -> None:
    engine = Model(small[1])
    x = np.zeros((2, 36), np.float32)
    x[1, 5] = bad
    with pytest.raises(EdgeError, match="feature vector 1") as info:
        engine.score(x)
    assert info.value.reason == "input"


def test_wrong_shapes_are_refused_with_the_shape(small: tuple[VwmModel, bytes]) -> None:
    engine = Model(small[1])
    with pytest.raises(EdgeError, match=r"\(2, 35\)"):
        engine.score(np.zeros((2, 35)))


def reason(blob: bytes) -> str:
    try:
        Model(blob)
    except EdgeError as error:
        return error.reason
    return "ok"


def test_every_truncation_and_every_flipped_byte_is_refused(small: tuple[VwmModel, bytes]) -> None:
    blob = small[1]
    assert reason(blob) == "ok"
    for length in range(len(blob)):
        assert reason(blob[:length]) in {"truncated", "magic"}, length
    for at in range(len(blob)):
        flipped = bytearray(blob)
        flipped[at] ^= 0x20
        assert reason(bytes(flipped)) in {"crc", "magic", "truncated", "unsupported"}, at


def test_a_consistent_but_hostile_blob_never_crashes(small: tuple[VwmModel, bytes]) -> None:
    """Bytes changed and the CRC recomputed: parse, run and golden check stay in bounds."""
    blob = small[1]
    rng = np.random.default_rng(3)
    outcomes = set()
    for at in range(len(blob)):
        hostile = bytearray(blob)
        hostile[at] = (hostile[at] + int(rng.integers(1, 256))) % 256
        outcome = reason(reseal(hostile))
        if outcome == "ok":
            engine = Model(reseal(hostile))
            engine.run(np.zeros(36, np.int8))
            try:
                engine.check_golden()
            except EdgeError as error:
                outcome = error.reason
        outcomes.add(outcome)
    # weight and bias bytes are free, so some changes parse and then miss the golden outputs
    assert {"ok", "golden", "format"} <= outcomes
    assert outcomes <= {"ok", "golden", "format", "truncated", "unsupported", "version", "magic"}


@pytest.mark.parametrize(
    ("offset", "value", "expected"),
    [
        (0, b"VWM2", "magic"),
        (4, struct.pack("<H", 2), "version"),
        (6, struct.pack("<H", 60), "format"),
        (8, struct.pack("<I", 16 * 1024 * 1024 + 4), "unsupported"),
        (8, struct.pack("<I", 1 << 20), "truncated"),
        (8, struct.pack("<I", 62), "format"),
        (30, struct.pack("<H", 17), "unsupported"),
        (30, struct.pack("<H", 0), "format"),
        (32, struct.pack("<f", float("nan")), "format"),
        (48, struct.pack("<f", -1.0), "format"),
        (52, struct.pack("<H", 65), "unsupported"),
        (54, bytes([0]), "format"),
        (64, b"t*st", "format"),
    ],
)
def test_header_fields_are_checked(
    small: tuple[VwmModel, bytes], offset: int, value: bytes, expected: str
) -> None:
    hostile = bytearray(small[1])
    hostile[offset : offset + len(value)] = value
    assert reason(reseal(hostile)) == expected


def test_biases_are_bounded_so_no_sum_overflows(small: tuple[VwmModel, bytes]) -> None:
    model, _ = small
    first = model.layers[0]
    for bias, accepted in [(MAX_BIAS, True), (-MAX_BIAS, True), (MAX_BIAS + 1, False)]:
        layer = dataclasses.replace(first, bias=np.full(32, bias, np.int32))
        edited = dataclasses.replace(model, layers=(layer, *model.layers[1:]))
        if accepted:
            Model(encode(edited)).check_golden()
            continue
        with pytest.raises(EdgeError, match="bias"):
            encode(edited)
        # written anyway, the firmware refuses it too
        blob = bytearray(encode(model))
        struct.pack_into("<i", blob, layer_bias_offset(model), bias)
        assert reason(reseal(blob)) == "format"


def layer_bias_offset(model: VwmModel) -> int:
    """Offset of the first bias of layer 0 (layout: vw_model.h)."""
    n = model.spec.n_features
    pad = (n + 3) & ~3
    header = 64 + ((len(model.model_id) + 3) & ~3) + ((2 * (model.spec.n_bands + 1) + 3) & ~3)
    return header + 8 * n + 16 + 32 * pad


def test_a_changed_golden_output_is_caught(small: tuple[VwmModel, bytes]) -> None:
    blob = bytearray(small[1])
    record = 36 + 36 + 4
    blob[len(blob) - record + 36] ^= 1  # first output byte of the last golden vector
    engine = Model(reseal(blob))
    with pytest.raises(EdgeError) as info:
        engine.check_golden()
    assert info.value.reason == "golden"
