"""The firmware's device layer through its Python binding: every payload it publishes
is what the wire contract says, its scores are the engine's, and its sequence numbers
never repeat across reboots and power cuts."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import jsonschema
import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from vibewatch.edge import DeviceCapabilities, Model, SlotDevice, features
from vibewatch.edge.device import Device, DeviceSettings
from vibewatch.edge.ota import Manifest
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import EdgeError
from vibewatch.protocol import (
    AnomalyEvent,
    Command,
    CommandName,
    CommandOutcome,
    CommandReply,
    EventKind,
    Features,
    Kind,
    Limits,
    OtaChunk,
    OtaJob,
    OtaRequest,
    OtaRequestKind,
    RawWindow,
    Status,
    Telemetry,
    decode_message,
)
from vibewatch.signals import Fault, Machine, generate
from vibewatch.testing.models import reseal

ROOT = Path(__file__).resolve().parents[2]
BLOB = (ROOT / "models" / "factory" / "package" / "model.vwm").read_bytes()
HEADER = decode_header(BLOB)
SPEC = HEADER.spec
DOCS = ROOT / "docs" / "protocol"
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
WINDOW_MS = SPEC.window * 1000 // SPEC.sample_rate_hz


class Bench:
    """A device on fresh storage, its published messages, and its two clocks."""

    def __init__(
        self, settings: DeviceSettings | None = None, public_key: Ed25519PublicKey | None = None
    ) -> None:
        self.slots = SlotDevice(
            public_key or Ed25519PrivateKey.generate().public_key(),
            DeviceCapabilities(sample_rate_hz=SPEC.sample_rate_hz, max_window=SPEC.window),
        )
        self.slots.boot()
        self.slots.provision(BLOB)
        self.settings = settings or DeviceSettings()
        self.sent: list[tuple[str, bytes]] = []
        self.now = 0
        self.wall = T0
        self.taking = True
        self.fed: list[npt.NDArray[np.float32]] = []  # the windows of the last run
        self.device = self.power_on()

    def power_on(self) -> Device:
        self.slots.boot()
        self.now = 0
        self.device = Device(
            self.slots,
            firmware="2.1.0",
            publish=self.publish,
            clock_ms=lambda: self.now,
            wall_ms=lambda: self.wall,
            capabilities=("ota", "raw"),
            settings=self.settings,
        )
        return self.device

    def publish(self, suffix: str, payload: bytes) -> bool:
        if self.taking:
            self.sent.append((suffix, payload))
        return self.taking

    def run(self, windows: list[npt.NDArray[np.float32]]) -> None:
        self.fed = windows
        for window in windows:
            self.now += 1000
            self.wall += 1000
            self.device.window(window)

    def decoded(self, suffix: str) -> list[object]:
        kind = Kind(suffix)
        return [
            decode_message(kind, "dev-1", payload, now_ms=self.wall, limits=Limits())
            for s, payload in self.sent
            if s == suffix
        ]


def recorded(n: int, *faults: Fault, seed: int = 0) -> list[npt.NDArray[np.float32]]:
    """``n`` consecutive windows of the generator's machine, with ``faults``."""
    duration = n * SPEC.window / SPEC.sample_rate_hz
    signal = generate(
        Machine(), duration_s=duration, sample_rate_hz=SPEC.sample_rate_hz, faults=faults, seed=seed
    )
    return list(signal.reshape(n, SPEC.window))


def healthy(n: int, seed: int = 0) -> list[npt.NDArray[np.float32]]:
    """Healthy windows the factory model scores below its release level (0.8 x threshold)."""
    model = Model(BLOB)
    found: list[npt.NDArray[np.float32]] = []
    while len(found) < n:
        batch = recorded(32, seed=seed)
        scores = model.score(np.stack([features(w, SPEC) for w in batch]))
        found += [
            w for w, score in zip(batch, scores, strict=True) if score < 0.8 * HEADER.threshold
        ]
        seed += 1000
    return found[:n]


def faulty(n: int, seed: int = 1) -> list[npt.NDArray[np.float32]]:
    return recorded(n, Fault("outer_race", 1.0), seed=seed)


def schema(suffix: str) -> dict[str, object]:
    name = suffix.replace("/", "_")
    loaded: dict[str, object] = json.loads((DOCS / f"{name}.schema.json").read_text("utf-8"))
    return loaded


def test_every_payload_is_the_wire_contract() -> None:
    bench = Bench(DeviceSettings(batch_windows=7, features_every=5))
    bench.device.connected()
    bench.run(healthy(12) + faulty(8) + healthy(12))
    bench.now += 20_000
    bench.device.poll()
    suffixes = {suffix for suffix, _ in bench.sent}
    assert suffixes == {"status", "telemetry", "event", "features"}
    for suffix, payload in bench.sent:
        jsonschema.validate(json.loads(payload), schema(suffix))
    (status,) = bench.decoded("status")
    assert isinstance(status, Status)
    assert (status.firmware, status.model_id, status.model_version) == ("2.1.0", "vibewatch-ae", 1)
    assert status.capabilities == ("ota", "raw")
    assert status.slots is not None and status.slots.a.value == "active"
    will = decode_message(
        Kind.STATUS, "dev-1", bench.device.last_will(), now_ms=T0, limits=Limits()
    )
    assert isinstance(will, Status) and will.state.value == "offline"
    readings = [
        r for m in bench.decoded("telemetry") if isinstance(m, Telemetry) for r in m.readings
    ]
    assert len(readings) == 32  # every window, the last partial batch sent by the poll
    vectors = [v for m in bench.decoded("features") if isinstance(m, Features) for v in m.vectors]
    assert [v.seq & 0xFFFFFFFF for v in vectors] == [0, 5, 10, 15, 20, 25, 30]
    assert all(len(v.x) == SPEC.n_features for v in vectors)
    assert {m.spec for m in bench.decoded("features") if isinstance(m, Features)} == {SPEC.spec_id}


def test_scores_features_and_times_are_the_engines_exactly() -> None:
    bench = Bench(DeviceSettings(batch_windows=4, features_every=1))
    windows = healthy(4) + faulty(4)
    bench.run(windows)
    readings = [
        r for m in bench.decoded("telemetry") if isinstance(m, Telemetry) for r in m.readings
    ]
    vectors = [v for m in bench.decoded("features") if isinstance(m, Features) for v in m.vectors]
    model = Model(BLOB)
    for i, (window, reading, vector) in enumerate(zip(windows, readings, vectors, strict=True)):
        x = features(window, SPEC)
        # nine digits read back as the same float32
        assert np.float32(reading.score) == model.score(x[None])[0]
        stats = (reading.rms, reading.peak, reading.crest, reading.kurtosis)
        np.testing.assert_array_equal(np.float32(stats), x[SPEC.n_bands : SPEC.n_bands + 4])
        np.testing.assert_array_equal(np.float32(vector.x), x)
        assert reading.t == vector.t == T0 + 1000 * (i + 1) - WINDOW_MS


def test_anomaly_events_start_and_end_with_debounce() -> None:
    bench = Bench(DeviceSettings(k=3, n=5, m=4, features_every=0))
    bench.run(healthy(6) + faulty(6) + healthy(8))
    events = [m for m in bench.decoded("event") if isinstance(m, AnomalyEvent)]
    assert [e.kind for e in events] == [EventKind.START, EventKind.END]
    start, end = events
    assert start.seq & 0xFFFFFFFF == 8  # the third faulty window
    assert end.seq & 0xFFFFFFFF == 15  # the fourth healthy one after them
    assert start.threshold == pytest.approx(HEADER.threshold)
    assert start.score >= start.threshold > end.score
    assert (start.model_id, start.model_version) == ("vibewatch-ae", 1)


def test_sequence_numbers_never_repeat_across_reboots_and_power_cuts() -> None:
    bench = Bench(DeviceSettings(batch_windows=1, features_every=0))
    assert bench.device.powered
    bench.run(healthy(3))
    for torn in (None, 0, 5, 15):
        # the power goes at the next storage write, the boot record's: right after it,
        # or cutting it short (then the boot fails, having published nothing)
        bench.slots.inject_reset(1, torn)
        if torn is None:
            device = bench.power_on()
            assert not bench.slots.powered and not device.powered  # it takes nothing now
        else:
            with pytest.raises(EdgeError, match="storage"):
                bench.power_on()
        bench.power_on()
        bench.run(healthy(3))
    seqs = [
        r.seq for m in bench.decoded("telemetry") if isinstance(m, Telemetry) for r in m.readings
    ]
    assert len(seqs) == 15
    assert seqs == sorted(set(seqs))


def test_nothing_is_published_before_the_wall_clock_is_known() -> None:
    bench = Bench(DeviceSettings(batch_windows=1))
    bench.wall = 0
    for window in healthy(3):
        bench.device.window(window)
    assert bench.sent == []
    assert bench.device.counters.unsynced_windows == 3
    with pytest.raises(EdgeError, match="state"):
        bench.device.connected()


def test_a_refused_batch_is_sent_again() -> None:
    bench = Bench(DeviceSettings(batch_windows=2, features_every=0))
    bench.taking = False
    bench.run(healthy(6))
    counters = bench.device.counters
    assert (counters.readings_dropped, counters.published) == (4, 0)
    bench.taking = True
    bench.run(healthy(1))
    readings = [
        r for m in bench.decoded("telemetry") if isinstance(m, Telemetry) for r in m.readings
    ]
    assert [r.seq & 0xFFFFFFFF for r in readings] == [0, 1]  # the kept batch, sent again


def test_refused_settings_and_windows() -> None:
    bench = Bench()
    with pytest.raises(EdgeError, match="arg"):
        Device(
            bench.slots,
            firmware="has space",
            publish=bench.publish,
            clock_ms=lambda: 0,
            wall_ms=lambda: T0,
        )
    with pytest.raises(EdgeError, match="arg"):
        Device(
            bench.slots,
            firmware="1.0",
            publish=bench.publish,
            clock_ms=lambda: 0,
            wall_ms=lambda: T0,
            settings=DeviceSettings(k=6, n=5),
        )
    with pytest.raises(EdgeError, match="arg"):
        bench.device.window(np.zeros(10, np.float32))
    bad = healthy(1)[0]
    bad[3] = np.nan
    with pytest.raises(EdgeError, match="input"):
        bench.device.window(bad)


@settings(max_examples=150, deadline=None)
@given(
    command_id=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    name=st.sampled_from(list(CommandName)),
    threshold=st.floats(1e-30, 1e12, allow_subnormal=False),
)
def test_commands_from_the_back_end_are_answered_as_the_contract_says(
    command_id: str, name: CommandName, threshold: float
) -> None:
    bench = Bench(DeviceSettings(features_every=0, calibrate_windows=2))
    sent = Command(
        device="dev-1",
        id=command_id,
        t=T0,
        cmd=name,
        threshold=threshold if name is CommandName.SET_THRESHOLD else None,
    )
    bench.device.command(sent.encode())
    if name in (CommandName.CALIBRATE, CommandName.UPLOAD_RAW):
        assert bench.sent == []  # answered once its windows are scored
        bench.run(healthy(2))
    if name is CommandName.CALIBRATE:  # the new threshold goes out in the status too
        assert bench.sent[-1][0] == "status"
        bench.sent.pop()
    suffix, payload = bench.sent[-1]
    assert suffix == "cmd/reply"
    jsonschema.validate(json.loads(payload), schema(suffix))
    reply = decode_message(Kind.CMD_REPLY, "dev-1", payload, now_ms=bench.wall, limits=Limits())
    assert isinstance(reply, CommandReply)
    assert (reply.id, reply.cmd) == (command_id, name)
    if name is CommandName.SET_THRESHOLD:
        assert reply.outcome is CommandOutcome.DONE
        assert reply.threshold is not None
        assert np.float32(reply.threshold) == np.float32(threshold)
    elif name is CommandName.CALIBRATE:
        assert reply.outcome is CommandOutcome.DONE
        assert reply.threshold is not None and reply.threshold > 0
    elif name is CommandName.ROLLBACK:  # the factory model has nothing before it
        assert reply.outcome is CommandOutcome.REFUSED
        assert reply.detail == "no previous model to go back to"
    else:
        assert reply.outcome is CommandOutcome.DONE
        suffix, raw_payload = bench.sent[-2]
        assert suffix == "raw"  # the window went out before the reply
        raw = decode_message(Kind.RAW, "dev-1", raw_payload, now_ms=bench.wall, limits=Limits())
        assert isinstance(raw, RawWindow) and raw.belongs_to(command_id)
        assert raw.samples == tuple(float(x) for x in bench.fed[0])
        assert (raw.sample_rate_hz, raw.seq & 0xFFFFFFFF) == (SPEC.sample_rate_hz, 0)
        assert raw.t == T0 + 1000 - WINDOW_MS
    assert bench.device.counters.commands == 1


def test_a_command_without_a_readable_id_is_not_answered() -> None:
    bench = Bench()
    for payload in (b"", b"{", b'{"t": 1764547200000, "cmd": "calibrate"}', b'{"id": "a b"}'):
        with pytest.raises(EdgeError, match=r"json|message"):
            bench.device.command(payload)
    assert bench.sent == []
    assert bench.device.counters.commands_unanswered == 4


# ---- over the air ---------------------------------------------------------------------


def version(blob: bytes, number: int) -> bytes:
    """The factory blob as another version of the model (the header's version field)."""
    changed = bytearray(blob)
    struct.pack_into("<I", changed, 16, number)
    return reseal(changed)


def job_for(key: Ed25519PrivateKey, blob: bytes, number: int, job: str, chunk: int) -> OtaJob:
    manifest = Manifest.for_blob(HEADER.model_id, number, blob, chunk_size=chunk)
    return OtaJob(
        device="dev-1",
        job=job,
        model_id=manifest.model_id,
        model_version=number,
        size=manifest.size,
        sha256=manifest.sha256,
        chunk_size=chunk,
        signature=manifest.sign(key),
    )


class OtaBench(Bench):
    """A bench whose slots trust a key of the test, and a back end that serves chunks."""

    def __init__(self, settings: DeviceSettings) -> None:
        self.key = Ed25519PrivateKey.generate()
        super().__init__(settings, public_key=self.key.public_key())
        self.served = 0
        self.late = 0

    def requests(self, since: int = 0) -> list[OtaRequest]:
        return [
            m
            for m in (
                decode_message(Kind.OTA_REQ, "dev-1", p, now_ms=self.wall, limits=Limits())
                for s, p in self.sent[since:]
                if s == "ota/req"
            )
            if isinstance(m, OtaRequest)
        ]

    def states(self) -> list[tuple[str, str | None]]:
        return [
            (r.state.value, r.detail) for r in self.requests() if r.kind is OtaRequestKind.STATE
        ]

    def serve(self, blob: bytes, job: str, rng: random.Random, *, loss: float = 0.0) -> None:
        """Answer chunk requests over a link that loses, repeats and reorders messages,
        polling the device as time passes, until the blob is activated or refused."""
        seen = 0
        for _ in range(2000):
            if any(state in ("activated", "failed") for state, _ in self.states()):
                return
            asked = [r for r in self.requests(seen) if r.kind is OtaRequestKind.CHUNK]
            seen = len(self.sent)
            rng.shuffle(asked)
            for request in asked:
                assert request.offset is not None and request.length is not None
                data = blob[request.offset : request.offset + request.length]
                chunk = OtaChunk.for_job("dev-1", job, request.offset, data).encode()
                for _ in range(rng.choice((0, 1, 1, 1, 2)) if rng.random() >= loss else 0):
                    self.served += 1
                    try:
                        self.device.ota_chunk(chunk)
                    except EdgeError as exc:  # a late copy, after the blob was complete
                        assert exc.reason == "state", exc
                        self.late += 1
            self.now += 700
            self.device.poll()
        raise AssertionError(f"no outcome; states {self.states()}")


def test_a_signed_model_is_downloaded_over_a_bad_link_activated_and_confirmed() -> None:
    bench = OtaBench(
        DeviceSettings(ota_window=3, ota_timeout_ms=1000, trial_ms=5000, features_every=0)
    )
    v2 = version(BLOB, 2)
    job = job_for(bench.key, v2, 2, "job-7", 512)
    bench.device.ota_job(job.encode())
    bench.serve(v2, "job-7", random.Random(7), loss=0.2)
    assert [s for s, _ in bench.states()] == ["downloading", "verifying", "activated"]
    requests = [r for r in bench.requests() if r.kind is OtaRequestKind.CHUNK]
    assert {r.offset for r in requests} == set(range(0, len(v2), 512))  # every chunk asked for
    assert all(r.length == min(512, len(v2) - (r.offset or 0)) for r in requests)
    # the new model scores the next window; the status says so
    bench.run(faulty(3))
    (event,) = [m for m in bench.decoded("event") if isinstance(m, AnomalyEvent)]
    assert event.model_version == 2
    bench.device.connected()
    status = [m for m in bench.decoded("status") if isinstance(m, Status)][-1]
    assert status.model_version == 2
    assert status.slots is not None and status.slots.b.value == "active"
    # the trial ends with a confirmation; the retained job coming again changes nothing
    bench.now += 5000
    bench.device.poll()
    assert bench.states()[-1] == ("installed", None)
    bench.device.ota_job(job.encode())
    assert bench.states()[-1] == ("installed", None)
    assert bench.device.counters.chunks_ignored == bench.late


def test_a_download_resumes_after_a_reset_and_a_reset_on_trial_rolls_back() -> None:
    bench = OtaBench(DeviceSettings(ota_window=2, ota_timeout_ms=1000, trial_ms=60_000))
    v2 = version(BLOB, 2)
    job = job_for(bench.key, v2, 2, "job-8", 1024)
    bench.device.ota_job(job.encode())
    first = [r for r in bench.requests() if r.kind is OtaRequestKind.CHUNK]
    for request in first:  # the first two chunks arrive, then the power goes
        assert request.offset is not None and request.length is not None
        data = v2[request.offset : request.offset + request.length]
        bench.device.ota_chunk(OtaChunk.for_job("dev-1", "job-8", request.offset, data).encode())
    stored = {r.offset for r in first}
    bench.power_on()
    mark = len(bench.sent)
    bench.device.ota_job(job.encode())  # the retained job arrives again on reconnect
    again = [r for r in bench.requests(mark) if r.kind is OtaRequestKind.CHUNK]
    assert again and stored.isdisjoint(r.offset for r in again)  # what storage holds is kept
    bench.serve(v2, "job-8", random.Random(8))
    assert bench.states()[-1] == ("activated", None)
    bench.power_on()  # a reset before the trial is confirmed: back to version 1
    bench.device.ota_job(job.encode())
    assert bench.states()[-1] == ("rolled_back", "the model did not complete its trial")
    bench.device.connected()
    status = [m for m in bench.decoded("status") if isinstance(m, Status)][-1]
    assert status.model_version == 1


def test_a_withdrawn_job_ends_the_download_and_the_job_sent_again_resumes_it() -> None:
    bench = OtaBench(DeviceSettings(ota_window=2, ota_timeout_ms=1000, features_every=0))
    v2 = version(BLOB, 2)
    job = job_for(bench.key, v2, 2, "job-12", 1024)
    bench.device.ota_job(job.encode())
    (first, _) = [r for r in bench.requests() if r.kind is OtaRequestKind.CHUNK]
    assert first.offset is not None and first.length is not None
    data = v2[first.offset : first.offset + first.length]
    bench.device.ota_job(b"")  # the rollout aborted: its retained job is cleared
    mark = len(bench.sent)
    for _ in range(5):
        bench.now += 1000
        bench.device.poll()
    assert bench.requests(mark) == []  # it asks for nothing any more
    with pytest.raises(EdgeError, match="state"):
        bench.device.ota_chunk(OtaChunk.for_job("dev-1", "job-12", 0, data).encode())
    bench.device.ota_job(job.encode())  # sent again: the download goes on
    bench.serve(v2, "job-12", random.Random(12))
    assert bench.states()[-1] == ("activated", None)
    bench.device.ota_job(b"")  # on trial: nothing changes
    bench.now += 600_000
    bench.device.poll()
    assert bench.states()[-1] == ("installed", None)


def test_refused_jobs_are_reported_with_the_reason() -> None:
    bench = OtaBench(DeviceSettings())
    v2 = version(BLOB, 2)
    forged = job_for(Ed25519PrivateKey.generate(), v2, 2, "job-9", 512)
    bench.device.ota_job(forged.encode())
    assert bench.states()[-1] == ("failed", "signature")
    v0 = version(BLOB, 0)
    bench.device.ota_job(job_for(bench.key, v0, 0, "job-10", 512).encode())
    assert bench.states()[-1] == ("failed", "downgrade")
    bench.device.ota_job(b'{"job": "job-11", "model_id": "x"}')
    assert bench.states()[-1] == ("failed", "not a job the contract allows")
    with pytest.raises(EdgeError, match="message"):
        bench.device.ota_job(b'{"model_id": "x"}')  # no job id: nothing to report on
    chunk = OtaChunk.for_job("dev-1", "job-9", 0, v2[:512]).encode()
    with pytest.raises(EdgeError, match="state"):
        bench.device.ota_chunk(chunk)  # no download in progress
    assert bench.device.counters.chunks_ignored == 1
