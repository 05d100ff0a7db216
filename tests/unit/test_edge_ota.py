"""OTA model slots through the C core (vibewatch.edge.ota), with real Ed25519 and real blobs."""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import _lib
from vibewatch.edge.ota import DeviceCapabilities, Manifest, SlotDevice
from vibewatch.edge.vwm import encode
from vibewatch.errors import EdgeError
from vibewatch.testing.models import golden_broken, random_model, spec_for

RATE = 16000
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
# 64 bytes of engine memory: enough for 12-8-12 (56 bytes), not for 12-16-12 (88 bytes).
CAPS = DeviceCapabilities(sample_rate_hz=RATE, max_window=1024, engine_work_bytes=64)
SLOT_BYTES = 4096
CHUNK = 64


def blob_of(
    version: int, *, rate: int = RATE, window: int = 512, hidden: int = 8, seed: int = 0
) -> bytes:
    """A small autoencoder (12 features, 12-hidden-12) with 3 golden vectors."""
    spec = spec_for(12, sample_rate_hz=rate, window=window)
    model = random_model(
        seed, (12, hidden, 12), spec=spec, model_id="fan-ae", version=version, golden=3
    )
    return encode(model)


V1 = blob_of(1)
V2 = blob_of(2, seed=1)
V3 = blob_of(3, seed=2)


def manifest(blob: bytes, version: int, *, rollback: bool = False) -> Manifest:
    return Manifest.for_blob("fan-ae", version, blob, chunk_size=CHUNK, rollback=rollback)


def device(storage: bytes | None = None, *, boot: bool = True) -> SlotDevice:
    dev = SlotDevice(KEY.public_key(), CAPS, slot_bytes=SLOT_BYTES, storage=storage)
    if boot:
        dev.boot()
    return dev


@pytest.fixture
def v1_device() -> SlotDevice:
    dev = device()
    dev.provision(V1)
    return dev


def install(dev: SlotDevice, blob: bytes, m: Manifest, key: Ed25519PrivateKey = KEY) -> None:
    dev.install(m, m.sign(key), blob)


# ---- SHA-256 -------------------------------------------------------------------------


def c_sha256(data: bytes) -> bytes:
    core = _lib.lib()
    digest = ctypes.create_string_buffer(32)
    core.vw_sha256.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    _lib.check(core.vw_sha256(data, len(data), ctypes.addressof(digest)), "sha256")
    return digest.raw


def test_sha256_agrees_with_hashlib_at_every_length_around_the_padding_boundaries() -> None:
    rng = np.random.default_rng(5)
    for n in [*range(0, 200), 447, 448, 511, 512, 513, 1000, 4096, 100_003]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert c_sha256(data) == hashlib.sha256(data).digest(), n
    assert c_sha256(b"a" * 1_000_000).hex() == (
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    )


# ---- manifests -----------------------------------------------------------------------


def test_signed_text_is_the_documented_one() -> None:
    m = Manifest("pump-7", 42, 4096, "ab" * 32, chunk_size=512)
    assert m.signed_text() == b"vw-model-v1\npump-7\n42\n4096\n" + b"ab" * 32 + b"\n"
    rolled = dataclasses.replace(m, rollback=True)
    assert rolled.signed_text() == m.signed_text() + b"rollback\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_id": "a/b"},
        {"model_id": "x" * 65},
        {"size": 0},
        {"sha256": "AB" * 32},
        {"chunk_size": 32},
        {"model_version": -1},
    ],
)
def test_malformed_manifests_are_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "model_id": "m",
        "model_version": 1,
        "size": 10,
        "sha256": "00" * 32,
        "chunk_size": 64,
    }
    fields.update(kwargs)
    with pytest.raises(EdgeError) as err:
        Manifest(**fields)  # type: ignore[arg-type]
    assert err.value.reason == "arg"


# ---- provisioning, install, trial ----------------------------------------------------


def test_blank_device_has_no_model_until_provisioned() -> None:
    dev = device()
    assert dev.state.state == "no_model"
    assert dev.active_blob is None
    m = manifest(V2, 2)
    with pytest.raises(EdgeError) as err:
        dev.begin(m, m.sign(KEY))
    assert err.value.reason == "state"
    dev.provision(V1)
    state = dev.boot()
    assert (state.state, state.active_slot, state.model_id, state.model_version) == (
        "idle",
        "a",
        "fan-ae",
        1,
    )
    assert state.model_sha256 == hashlib.sha256(V1).hexdigest()
    assert state.slots["b"].state == "empty"
    assert dev.active_blob == V1
    with pytest.raises(EdgeError) as err:
        dev.provision(V1)
    assert err.value.reason == "state"


def test_install_activates_on_trial_and_confirm_keeps_it(v1_device: SlotDevice) -> None:
    install(v1_device, V2, manifest(V2, 2))
    state = v1_device.state
    assert (state.state, state.active_slot, state.model_version) == ("trial", "b", 2)
    assert state.slots["a"].state == "standby"
    assert state.last_event == "activated"
    v1_device.confirm()
    assert v1_device.state.last_event == "confirmed"
    state = v1_device.boot()
    assert (state.state, state.active_slot, state.model_version) == ("idle", "b", 2)
    assert state.model_sha256 == hashlib.sha256(V2).hexdigest()
    assert v1_device.active_blob == V2
    # The next one goes into slot A, overwriting the standby.
    install(v1_device, V3, manifest(V3, 3))
    assert v1_device.state.active_slot == "a"


def test_unconfirmed_trial_falls_back_at_next_boot(v1_device: SlotDevice) -> None:
    install(v1_device, V2, manifest(V2, 2))
    state = v1_device.boot()
    assert (state.state, state.model_version, state.active_slot) == ("idle", 1, "a")
    assert state.slots["b"].state == "invalid"
    assert state.last_event == "rolled_back"
    with pytest.raises(EdgeError) as err:
        v1_device.confirm()
    assert err.value.reason == "state"


def test_no_new_install_while_on_trial(v1_device: SlotDevice) -> None:
    install(v1_device, V2, manifest(V2, 2))
    m3 = manifest(V3, 3)
    with pytest.raises(EdgeError) as err:
        v1_device.begin(m3, m3.sign(KEY))
    assert err.value.reason == "state"


def test_signed_rollback_installs_an_older_version(v1_device: SlotDevice) -> None:
    install(v1_device, V3, manifest(V3, 3))
    v1_device.confirm()
    older = manifest(V2, 2, rollback=True)
    install(v1_device, V2, older)
    assert v1_device.state.model_version == 2
    # The rollback line is part of what is signed: it cannot be added afterwards.
    plain = manifest(V1, 1)
    v1_device.confirm()
    with pytest.raises(EdgeError) as err:
        v1_device.begin(dataclasses.replace(plain, rollback=True), plain.sign(KEY))
    assert err.value.reason == "signature"


# ---- refusals ------------------------------------------------------------------------


def refusal(dev: SlotDevice, case: str) -> str:
    """Install a bad variant of v2; the EdgeError reason."""
    good = manifest(V2, 2)
    flipped = bytearray(V2)
    flipped[len(V2) // 2] ^= 0x01
    variants: dict[str, tuple[bytes, Manifest, Ed25519PrivateKey]] = {
        "flipped byte": (bytes(flipped), good, KEY),
        "wrong key": (V2, good, OTHER_KEY),
        "truncated blob": (V2[:-8], manifest(V2[:-8], 2), KEY),
        "downgrade": (V1, manifest(V1, 1), KEY),
        "wrong sample rate": (blob_of(2, rate=8000), manifest(blob_of(2, rate=8000), 2), KEY),
        "window too long": (blob_of(2, window=2048), manifest(blob_of(2, window=2048), 2), KEY),
        "too much memory": (blob_of(2, hidden=16), manifest(blob_of(2, hidden=16), 2), KEY),
        "failing golden vectors": (golden_broken(V2), manifest(golden_broken(V2), 2), KEY),
        "version differs": (V2, manifest(V2, 5), KEY),
        "too large": (V2, dataclasses.replace(good, size=SLOT_BYTES + 1), KEY),
    }
    blob, m, key = variants[case]
    with pytest.raises(EdgeError) as err:
        install(dev, blob, m, key)
    return err.value.reason


REFUSALS = {
    "flipped byte": "hash",
    "wrong key": "signature",
    "truncated blob": "truncated",
    "downgrade": "downgrade",
    "wrong sample rate": "spec",
    "window too long": "spec",
    "too much memory": "spec",
    "failing golden vectors": "golden",
    "version differs": "format",
    "too large": "too_large",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_installs_are_refused_and_the_current_model_stays(
    v1_device: SlotDevice, case: str
) -> None:
    assert refusal(v1_device, case) == REFUSALS[case]
    state = v1_device.state
    assert (state.state, state.model_version, state.active_slot) == ("idle", 1, "a")
    if state.last_event == "failed":  # refused after the download, by finish
        assert state.last_error == REFUSALS[case]
        assert state.slots["b"].state == "invalid"
    assert v1_device.boot().model_version == 1
    # And a good install still goes through afterwards.
    install(v1_device, V2, manifest(V2, 2))
    assert v1_device.state.model_version == 2


def test_the_issue_refusals_have_distinct_reasons() -> None:
    cases = [
        "flipped byte",
        "wrong key",
        "truncated blob",
        "downgrade",
        "wrong sample rate",
        "failing golden vectors",
    ]
    reasons = {REFUSALS[c] for c in cases}
    assert len(reasons) == len(cases)


def test_missing_chunk_is_incomplete_and_changes_nothing(v1_device: SlotDevice) -> None:
    m = manifest(V2, 2)
    v1_device.begin(m, m.sign(KEY))
    for offset in range(0, len(V2) - CHUNK, CHUNK):
        v1_device.chunk(offset, V2[offset : offset + CHUNK])
    last = (len(V2) - 1) // CHUNK * CHUNK
    assert v1_device.next_missing() == (last, len(V2) - last)
    with pytest.raises(EdgeError) as err:
        v1_device.finish()
    assert err.value.reason == "incomplete"
    assert v1_device.state.state == "downloading"
    v1_device.chunk(last, V2[last:])
    v1_device.finish()
    assert v1_device.state.model_version == 2


def test_chunk_ranges_are_checked(v1_device: SlotDevice) -> None:
    m = manifest(V2, 2)
    v1_device.begin(m, m.sign(KEY))
    for offset, data in [(1, V2[1:65]), (0, V2[:63]), (len(V2) + CHUNK, V2[:CHUNK])]:
        with pytest.raises(EdgeError) as err:
            v1_device.chunk(offset, data)
        assert err.value.reason == "range"


# ---- chunk order, duplicates, resume -------------------------------------------------


def chunks_of(blob: bytes) -> list[tuple[int, bytes]]:
    return [(o, blob[o : o + CHUNK]) for o in range(0, len(blob), CHUNK)]


def test_chunks_in_any_order_duplicated_and_resumed_after_reset(v1_device: SlotDevice) -> None:
    m = manifest(V2, 2)
    chunks = chunks_of(V2)
    order = np.random.default_rng(3).permutation(len(chunks))
    first, rest = order[: len(order) // 2], order[len(order) // 2 :]
    v1_device.begin(m, m.sign(KEY))
    for i in first:
        v1_device.chunk(*chunks[i])
        v1_device.chunk(*chunks[i])  # duplicate: ignored
    writes = v1_device.writes
    v1_device.chunk(*chunks[first[0]])
    assert v1_device.writes == writes

    state = v1_device.boot()  # reset: the download is restored from storage
    assert (state.state, state.model_version) == ("downloading", 1)
    assert (state.received_chunks, state.total_chunks) == (len(first), len(chunks))
    assert state.download_version == 2
    v1_device.begin(m, m.sign(KEY))  # the same manifest resumes: nothing rewritten
    assert v1_device.writes == writes
    assert v1_device.state.received_chunks == len(first)
    wanted = v1_device.next_missing()
    assert wanted is not None and wanted[0] == min(rest) * CHUNK
    for i in reversed(rest):
        v1_device.chunk(*chunks[i])
    assert v1_device.next_missing() is None
    v1_device.finish()
    assert v1_device.state.model_version == 2


def test_a_different_manifest_restarts_the_download(v1_device: SlotDevice) -> None:
    m2, m3 = manifest(V2, 2), manifest(V3, 3)
    v1_device.begin(m2, m2.sign(KEY))
    for chunk in chunks_of(V2)[:3]:
        v1_device.chunk(*chunk)
    v1_device.boot()
    v1_device.begin(m3, m3.sign(KEY))
    state = v1_device.state
    assert (state.received_chunks, state.download_version) == (0, 3)
    assert v1_device.next_missing() == (0, CHUNK)
    # The same chunks of another chunk size also restart.
    m3_big = Manifest.for_blob("fan-ae", 3, V3, chunk_size=128)
    v1_device.chunk(0, V3[:CHUNK])
    v1_device.begin(m3_big, m3_big.sign(KEY))
    assert v1_device.state.received_chunks == 0


# ---- power cuts ----------------------------------------------------------------------


def full_install(dev: SlotDevice, blob: bytes, m: Manifest) -> None:
    install(dev, blob, m)
    dev.confirm()


def test_power_cut_at_every_write_of_an_install_leaves_a_bootable_device() -> None:
    base = device()
    base.provision(V1)
    snapshot = bytes(base.storage)
    m = manifest(V2, 2)
    counting = device(snapshot)
    full_install(counting, V2, m)
    total = counting.writes
    assert total >= 2 * len(chunks_of(V2)) + 3

    seen: set[int] = set()
    for k in range(1, total + 1):
        for torn in (None, 0, 1, 37, 255):
            dev = device(snapshot)
            dev.inject_reset(k, torn)
            try:
                full_install(dev, V2, m)  # completes when only its last write was cut after
            except EdgeError as err:
                assert err.reason == "storage", (k, torn)
            assert not dev.powered
            state = dev.boot()
            assert state.state == "idle" or state.state == "downloading", (k, torn)
            assert state.model_version in (1, 2), (k, torn)
            assert dev.active_blob in (V1, V2)
            seen.add(state.model_version)
            # Power is back: the install completes from what storage holds.
            if state.model_version == 1:
                full_install(dev, V2, m)
            after = dev.boot()
            assert (after.model_version, after.state) == (2, "idle"), (k, torn)
    assert seen == {1, 2}


def test_power_cut_during_the_fallback_boot() -> None:
    trial = device()
    trial.provision(V1)
    install(trial, V2, manifest(V2, 2))
    snapshot = bytes(trial.storage)
    for torn in (None, 0, 1, 100):
        dev = device(snapshot, boot=False)  # booting this falls back: one metadata write
        dev.inject_reset(1, torn)
        if torn is None:
            assert dev.boot().model_version == 1  # the write landed, then the power went
        else:
            with pytest.raises(EdgeError) as err:
                dev.boot()
            assert err.value.reason == "storage"
        state = dev.boot()
        assert (state.model_version, state.slots["b"].state) == (1, "invalid")


def test_damaged_metadata_or_bitmap_never_boots_a_bad_model() -> None:
    base = device()
    base.provision(V1)
    full_install(base, V2, manifest(V2, 2))
    m3 = manifest(V3, 3)
    base.begin(m3, m3.sign(KEY))
    for chunk in chunks_of(V3)[:2]:
        base.chunk(*chunk)
    snapshot = bytes(base.storage)
    layout = base.layout
    region = layout.bitmap + layout.bitmap_bytes
    rng = np.random.default_rng(11)
    outcomes = set()
    for _ in range(300):
        dev = device(snapshot)
        store = dev.storage
        for at in rng.integers(0, region, int(rng.integers(1, 6))):
            store[int(at)] = int(rng.integers(0, 256))
        state = dev.boot()
        outcomes.add(state.state)
        if state.state != "no_model":
            assert dev.active_blob in (V1, V2)
        if state.state == "downloading":
            while (want := dev.next_missing()) is not None:
                dev.chunk(want[0], V3[want[0] : want[0] + want[1]])
            try:
                dev.finish()
            except EdgeError as err:
                assert err.reason in ("hash", "format", "truncated", "crc")
            assert dev.active_blob in (V1, V2, V3)
    assert {"idle", "downloading"} <= outcomes
