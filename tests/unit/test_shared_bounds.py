"""Rules stated once: every module that applies a shared rule agrees with its one statement.

* ids of models, feature specs, jobs...: ``vibewatch.protocol.ID_PATTERN``, used by the
  ``.vwm`` writer, OTA manifests, the registry and the training source, and checked
  by the firmware (``vw_model.c``) in the same way;
* device ids: ``vibewatch.protocol.DEVICE_ID_PATTERN``, and the training source's
  device selectors built from it;
* the model version: ``vibewatch.protocol.MODEL_VERSION_MAX``, the firmware's uint32;
* the topic prefix: ``vibewatch.protocol.prefix_problem``, also the configuration's check;
* the feature spec: ``vw_dsp_check_spec`` of the C core, which ``FeatureSpec`` asks.

Each rule is tried at its boundaries in every module that applies it, and where the
firmware owns the rule, against the C core itself.
"""

from __future__ import annotations

import ctypes
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch import protocol
from vibewatch.config import load_config
from vibewatch.edge import _lib, ota, vwm
from vibewatch.edge.engine import Model
from vibewatch.edge.ota import DeviceCapabilities, Manifest, SlotDevice
from vibewatch.edge.spec import (
    MAX_BANDS,
    MAX_SAMPLE_RATE_HZ,
    MAX_WINDOW,
    MIN_WINDOW,
    STAT_NAMES,
    FeatureSpec,
    dsp_limits,
)
from vibewatch.edge.vwm import VwmModel, encode
from vibewatch.errors import ConfigError, DataError, EdgeError, ProtocolError
from vibewatch.models import registry
from vibewatch.protocol import (
    DEVICE_ID_PATTERN,
    ID_MAX_LEN,
    ID_PATTERN,
    ID_RE,
    MODEL_VERSION_MAX,
    Kind,
    Limits,
    decode_message,
    prefix_problem,
)
from vibewatch.testing.models import TINY_DIMS, random_model
from vibewatch.train import influx_source

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol"
NOW = 1_750_000_000_000
RATE = 16_000
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def small_model(model_id: str = "pump", version: int = 1) -> VwmModel:
    """A small valid model with this id and version (not checked: ``encode`` checks)."""
    return random_model(0, TINY_DIMS, model_id=model_id, version=version)


def c_parses(blob: bytes) -> bool:
    """Whether the firmware's parser (``vw_model_parse``) accepts a blob."""
    try:
        Model(blob)
    except EdgeError as error:
        assert error.reason == "format", error
        return False
    return True


def accepts(call: Any, *errors: type[Exception]) -> bool:
    try:
        call()
    except errors:
        return False
    return True


def event(**fields: object) -> bytes:
    doc = {"seq": 1, "t": NOW - 1000, "kind": "start", "score": 0.5, "threshold": 0.25}
    doc |= {"model_id": "pump", "model_version": 1, **fields}
    return json.dumps(doc).encode()


def decodes(payload: bytes) -> bool:
    return accepts(
        lambda: decode_message(Kind.EVENT, "dev", payload, now_ms=NOW, limits=Limits()),
        ProtocolError,
    )


# --- ids --------------------------------------------------------------------------


def test_one_id_rule_for_every_module() -> None:
    assert ID_RE.pattern == ID_PATTERN == rf"[A-Za-z0-9._-]{{1,{ID_MAX_LEN}}}"
    assert vwm.ID_RE is ID_RE
    assert ota.ID_RE is ID_RE
    assert registry.ID_RE is ID_RE
    assert influx_source._SPEC_ID is ID_RE
    assert ota.MAX_ID == ID_MAX_LEN


IDS = [
    ("a", True),
    ("a" * ID_MAX_LEN, True),
    ("a" * (ID_MAX_LEN + 1), False),
    ("", False),
    ("pump-ae_v1.2", True),
    ("..", True),
    ("a/b", False),
    ("a b", False),
    ("a+b", False),
    ("a\x00", False),
    ("é", False),
    ("\uff41", False),  # FULLWIDTH LATIN SMALL LETTER A
]


@pytest.mark.parametrize(("model_id", "valid"), IDS)
def test_every_module_draws_the_same_id_boundary(model_id: str, valid: bool) -> None:
    assert (ID_RE.fullmatch(model_id) is not None) is valid
    assert decodes(event(model_id=model_id)) is valid
    sha = "0" * 64
    assert accepts(lambda: Manifest(model_id, 1, 64, sha), EdgeError) is valid
    assert accepts(lambda: encode(small_model(model_id)), EdgeError) is valid
    # The firmware's own check, on a blob written without the Python one.
    assert c_parses(vwm._assemble(small_model(model_id), b"", 0)) is valid


DEVICE_IDS = [
    ("d", True),
    ("d" * 64, True),
    ("d" * 65, False),
    ("", False),
    ("pump_07-A", True),
    ("a.b", False),
    ("a/b", False),
    ("é", False),
]


@pytest.mark.parametrize(("device", "valid"), DEVICE_IDS)
def test_device_ids_and_device_selectors_share_the_rule(device: str, valid: bool) -> None:
    assert accepts(lambda: protocol.check_device_id(device), ProtocolError) is valid
    assert accepts(lambda: influx_source.device_condition([device]), DataError) is valid
    assert (re.fullmatch(DEVICE_ID_PATTERN, device, re.ASCII) is not None) is valid


# --- the model version --------------------------------------------------------------


def test_the_version_bound_is_the_firmware_uint32() -> None:
    assert MODEL_VERSION_MAX == 2**32 - 1 == (1 << (8 * ctypes.sizeof(ctypes.c_uint32))) - 1
    assert ota.MODEL_VERSION_MAX is MODEL_VERSION_MAX
    assert vwm.MODEL_VERSION_MAX is MODEL_VERSION_MAX


@pytest.mark.parametrize(
    ("version", "valid"),
    [(0, True), (MODEL_VERSION_MAX, True), (MODEL_VERSION_MAX + 1, False), (-1, False)],
)
def test_every_module_draws_the_same_version_boundary(version: int, valid: bool) -> None:
    assert decodes(event(model_version=version)) is valid
    assert accepts(lambda: Manifest("pump", version, 64, "0" * 64), EdgeError) is valid
    assert accepts(lambda: encode(small_model(version=version)), EdgeError) is valid


def test_the_device_holds_and_installs_the_largest_version() -> None:
    top = encode(small_model(version=MODEL_VERSION_MAX))
    assert Model(top).version == MODEL_VERSION_MAX

    spec = Model(top).spec
    caps = DeviceCapabilities(sample_rate_hz=spec.sample_rate_hz, max_window=spec.window)
    device = SlotDevice(KEY.public_key(), caps, slot_bytes=8192)
    device.boot()
    device.provision(encode(small_model(version=1)))
    manifest = Manifest.for_blob("pump", MODEL_VERSION_MAX, top, chunk_size=64)
    # The signature covers the Python text; the firmware verifies the text it builds.
    device.install(manifest, manifest.sign(KEY), top)

    assert device.state.model_version == MODEL_VERSION_MAX


# --- the wire contract's documents ------------------------------------------------------


def walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_schemas_state_the_same_bounds() -> None:
    id_chars = re.fullmatch(r"\[(.*)\]\{1,\d+\}", ID_PATTERN)
    assert id_chars is not None
    ids = versions = 0
    for path in sorted(DOCS.glob("*.schema.json")):
        for node in walk(json.loads(path.read_text("utf-8"))):
            if node.get("pattern") == f"^[{id_chars.group(1)}]+$":
                assert (node["minLength"], node["maxLength"]) == (1, ID_MAX_LEN), path
                ids += 1
            if isinstance(node.get("model_version"), dict):
                bound = node["model_version"]
                assert (bound["minimum"], bound["maximum"]) == (0, MODEL_VERSION_MAX), path
                versions += 1
    assert ids == 7  # one id node per JSON schema but telemetry's (ota/chunk is binary)
    assert versions == 3  # event, status, ota/job


# --- the topic prefix -------------------------------------------------------------------


def config_problem(prefix: str) -> str | None:
    try:
        load_config(environ={"VIBEWATCH_MQTT_TOPIC_PREFIX": prefix})
    except ConfigError as error:
        line = str(error).splitlines()[1].strip()
        return line.partition("(from VIBEWATCH_MQTT_TOPIC_PREFIX): ")[2]
    return None


PREFIXES = [
    "vw/v1/",
    "",
    "/",
    "site-7/vw/v1/",
    "vw/$/",
    "vw/v1",
    "$SYS/",
    "$share/ingest/",
    "vw/+/",
    "vw/#/",
    "vw\x00/",
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_config_and_protocol_take_the_same_prefixes(prefix: str) -> None:
    problem = prefix_problem(prefix)
    assert config_problem(prefix) == problem
    assert accepts(lambda: protocol.check_prefix(prefix), ConfigError) is (problem is None)


@settings(max_examples=200)
@given(st.text(alphabet="v1/$+#\x00", max_size=6))
def test_config_and_protocol_agree_on_any_prefix(prefix: str) -> None:
    assert config_problem(prefix) == prefix_problem(prefix)


# --- the feature spec: the C core decides -----------------------------------------------


class CSpec(ctypes.Structure):
    """``vw_feature_spec_t``, to call ``vw_dsp_check_spec`` directly (not through the shim)."""

    _fields_ = (
        ("sample_rate_hz", ctypes.c_uint32),
        ("window", ctypes.c_uint16),
        ("n_bands", ctypes.c_uint16),
        ("band_bins", ctypes.POINTER(ctypes.c_uint16)),
    )


@cache
def c_core() -> ctypes.CDLL:
    core = ctypes.CDLL(_lib.lib()._name)  # an own handle: its prototypes are its own
    core.vw_dsp_check_spec.argtypes = [ctypes.POINTER(CSpec)]
    core.vw_dsp_check_spec.restype = ctypes.c_int
    core.vw_dsp_check_spec_fault.argtypes = [ctypes.POINTER(CSpec), ctypes.POINTER(ctypes.c_int)]
    core.vw_dsp_check_spec_fault.restype = ctypes.c_int
    return core


def c_spec(rate: int, window: int, bins: tuple[int, ...]) -> CSpec:
    edges = (ctypes.c_uint16 * len(bins))(*bins)
    return CSpec(rate, window, len(bins) - 1, edges)


def c_accepts(rate: int, window: int, bins: tuple[int, ...]) -> bool:
    status = c_core().vw_dsp_check_spec(ctypes.byref(c_spec(rate, window, bins)))
    assert status in (0, 8)  # VW_OK, VW_ERR_FORMAT
    return bool(status == 0)


def c_fault(rate: int, window: int, bins: tuple[int, ...]) -> int:
    """The vw_spec_fault_t the C core names (1 rate, 2 window, 3 bands, 4 order, 5 Nyquist)."""
    fault = ctypes.c_int(-1)
    c_core().vw_dsp_check_spec_fault(ctypes.byref(c_spec(rate, window, bins)), ctypes.byref(fault))
    return fault.value


def spec_refusal(rate: int, window: int, bins: tuple[int, ...]) -> str | None:
    try:
        FeatureSpec(rate, window, bins)
    except EdgeError as error:
        assert error.reason == "format"
        return error.detail
    return None


def test_the_dsp_limits_come_from_the_c_core() -> None:
    limits = dsp_limits()
    assert limits[:4] == (MIN_WINDOW, MAX_WINDOW, MAX_BANDS, MAX_SAMPLE_RATE_HZ)
    assert (limits.min_window, limits.max_window, limits.max_bands) == (256, 4096, 1024)
    assert limits.n_stats == len(STAT_NAMES)


SPECS = [
    (48_000, 1024, (0, 10, 513), 0, None),
    (1, MIN_WINDOW, (0, 1), 0, None),
    (MAX_SAMPLE_RATE_HZ, MAX_WINDOW, (0, 2049), 0, None),
    (48_000, MAX_WINDOW, tuple(range(MAX_BANDS + 1)), 0, None),
    (0, 1024, (0, 10), 1, "sample rate 0 Hz not in 1..1000000"),
    (1_000_001, 1024, (0, 10), 1, "sample rate 1000001 Hz not in 1..1000000"),
    (48_000, 128, (0, 10), 2, "window 128 is not a power of two in 256..4096"),
    (48_000, 1000, (0, 10), 2, "window 1000 is not a power of two in 256..4096"),
    (48_000, 8192, (0, 10), 2, "window 8192 is not a power of two in 256..4096"),
    (48_000, 1024, (0,), 3, "0 bands, expected 1..1024"),
    (48_000, MAX_WINDOW, tuple(range(MAX_BANDS + 2)), 3, "1025 bands, expected 1..1024"),
    (
        48_000,
        1024,
        (0, 10, 10, 20),
        4,
        "band bin edges (0, 10, 10, 20) are not strictly increasing",
    ),
    (
        48_000,
        1024,
        (0, 20, 10, 30),
        4,
        "band bin edges (0, 20, 10, 30) are not strictly increasing",
    ),
    (48_000, 1024, (0, 10, 514), 5, "last band edge 514 is past bin 512 (Nyquist)"),
    # Every rule broken: the first in the C core's order is named.
    (0, 1000, (5, 5, 9999), 1, "sample rate 0 Hz not in 1..1000000"),
    (48_000, 1024, (5, 5, 9999), 4, "band bin edges (5, 5, 9999) are not strictly increasing"),
]


@pytest.mark.parametrize(("rate", "window", "bins", "fault", "message"), SPECS)
def test_feature_spec_says_why_the_c_core_refuses(
    rate: int, window: int, bins: tuple[int, ...], fault: int, message: str | None
) -> None:
    assert c_accepts(rate, window, bins) is (message is None)
    assert c_fault(rate, window, bins) == fault
    assert spec_refusal(rate, window, bins) == message


@pytest.mark.parametrize(
    ("rate", "window", "bins"),
    [
        (2**32 + RATE, 1024, (0, 10)),  # wraps to a valid uint32
        (RATE, 2**16 + 1024, (0, 10)),  # wraps to a valid uint16
        (RATE, 1024, (-1, 10)),
        (RATE, 1024, (0, 2**16 + 10)),
        (RATE, 1024, ()),
    ],
)
def test_feature_spec_refuses_what_the_c_types_cannot_hold(
    rate: int, window: int, bins: tuple[int, ...]
) -> None:
    assert spec_refusal(rate, window, bins) is not None


rates = st.one_of(
    st.sampled_from([0, 1, 999_999, 1_000_000, 1_000_001, 2**32 - 1]), st.integers(0, 2**32 - 1)
)
windows = st.one_of(
    st.sampled_from([0, 128, 255, 256, 257, 512, 1000, 1024, 4096, 4097, 8192, 65535]),
    st.integers(0, 2**16 - 1),
)
edges = st.one_of(
    st.lists(st.integers(0, 2100), min_size=1, max_size=12),
    st.lists(st.integers(0, 2100), min_size=1, max_size=12, unique=True).map(sorted),
)


@settings(max_examples=400)
@given(rate=rates, window=windows, bins=edges)
def test_feature_spec_refuses_exactly_what_the_c_core_refuses(
    rate: int, window: int, bins: list[int]
) -> None:
    assert (spec_refusal(rate, window, tuple(bins)) is None) is c_accepts(rate, window, tuple(bins))
