"""OTA rollout benchmark: a model of about 20 KB to a thousand simulated devices, canary and waves.

One run starts a real Mosquitto broker on loopback (in a temporary directory), a data
home with a freshly generated signing key and the model below registered, the OTA
controller as a process of its own (``python -m vibewatch ota serve``, its default
settings), and in this process a :class:`~vibewatch.sim.run.Simulation` of ``--devices``
healthy devices (default 1,000), each the firmware's C device layer with the factory
model (version 1) in its slots and an MQTT connection of its own, at speedup 1: a window
every second, as on a board. Once the controller has every device's birth status,
``python -m vibewatch ota deploy vibewatch-ae 2 --all --canary 10 --waves 10%,50%,100%
--trial 5s --json`` creates the rollout (four waves: 10, 90, 400 and 500 devices), and
the fleet runs until the state database says the rollout ended.

The model: the factory model (37-32-8-32-37, 5,928 bytes) with its two 32-unit layers
widened, each by copies of its own units whose outgoing weights are zero, to the
smallest width whose blob reaches ``--model-bytes`` (default 20,000: 169 units, 20,340
bytes). It is written as a ``.tflite`` (:mod:`vibewatch.testing.tflite`) and converted
by the project's converter (:func:`vibewatch.edge.convert.convert`) with the factory's
normalisation, threshold and golden inputs (the same path rebuilds the factory blob
byte for byte, which the run checks first), then packaged and signed. It scores every
window exactly as the factory model does, so the regression guard sees the same quiet
fleet, and needs 760 bytes of engine memory (the simulated devices have 8,192).

It measures:

* ``converged``: devices whose active model, read from their slots at the end, is the
  new blob (the SHA-256 the device computed) and confirmed (not on trial);
* ``bricked``: devices without a valid active model: not exactly one ``active`` slot, or
  an active blob that is neither the factory's nor the new one;
* ``wall_seconds``: real seconds from the start of the ``ota deploy`` command until the
  benchmark saw the rollout ended (the state database, read every 0.25 s), minus the
  configured trial periods: each wave waits, by configuration, ``--trial`` after its
  last device activated the model (the devices confirm it after ``trial_ms`` of the
  same length, the controller holds the wave for ``--trial``), so ``waves x --trial``
  is subtracted. ``elapsed_s`` is the time with them;
* ``bytes_sent_per_device``: every downlink OTA message (``ota/job``, ``ota/chunk``,
  ``cmd``) on the wire, divided by the devices. A subscriber of this process, connected
  before the deploy, sees each message once through the broker (a retained job too)
  and counts the MQTT 5 PUBLISH packet the device receives: fixed header (1 byte and
  the remaining length's 1-4 bytes), topic (2-byte length and the topic), packet
  identifier (2 bytes, QoS 1), property length (1 byte: the controller sends no
  properties) and the payload. Jobs published again to a silent device and chunks
  asked for (and sent) again count. TCP, IP and the devices' own uplink (``ota/req``)
  do not; nor would a retained job a device takes again when it reconnects (none does
  here: the links do not break);
* ``model_bytes``: the blob the devices download;
* ``controller_peak_rss_mb``: the controller's ``VmHWM`` from ``/proc/<pid>/status``,
  read at the end, just before it is stopped with SIGTERM.

``vibewatch ota status ROLLOUT --json`` is read at the end too: it must say the rollout
completed and converged. Also reported: each wave's times (from the controller's record
of its devices: when the wave started, when its last device was seen with the model
active and when its last one reached an outcome), what the controller logged of chunks
served and requests dropped (its rate limit of 2,000 chunks a second), jobs and chunks
sent to a device more than once, and CPU time (user + system, from ``/proc/<pid>/stat``)
of this process (the fleet and the counter), the controller and the broker from the
deploy to the end, in % of one core.

Bars (exit status 1 when one is missed): ``converged == devices``, ``bricked == 0``,
``wall_seconds <= 120``, ``bytes_sent_per_device <= 1.15 x model_bytes``, and ``ota
status`` reports the rollout completed and converged.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outcome import finish, progress  # benchmarks/outcome.py, beside this script
from sim import BrokerCounter, CpuMeter, publish_packet_bytes  # benchmarks/sim.py, beside
from vibewatch.edge.convert import convert
from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.engine import Model
from vibewatch.edge.m4 import FACTORY_MODEL
from vibewatch.edge.ota import DeviceCapabilities
from vibewatch.edge.spec import FeatureSpec
from vibewatch.edge.tflite import ActivationFunction, read_model
from vibewatch.edge.vwm import HEADER_BYTES, decode_header
from vibewatch.errors import ProtocolError
from vibewatch.models.keys import generate_keypair, load_private_key
from vibewatch.models.package import (
    MANIFEST,
    ModelPackage,
    blob_fields,
    golden_vectors,
    write_package,
)
from vibewatch.models.registry import Registry
from vibewatch.ota.rollout import OUTCOMES, Rollout
from vibewatch.ota.store import RolloutStore
from vibewatch.protocol import (
    DEFAULT_PREFIX,
    Kind,
    OtaChunk,
    decode_message,
    parse_topic,
)
from vibewatch.sim.fleet import SimClock, SimDevice
from vibewatch.sim.run import Simulation
from vibewatch.sim.scenario import Scenario
from vibewatch.state import open_state_db
from vibewatch.testing import tflite
from vibewatch.testing.ingest import ServiceProcess
from vibewatch.testing.servers import LocalMosquitto

DEVICES: Final = 1000
#: Blob bytes the model reaches at least (the smallest widening that does).
MODEL_BYTES: Final = 20_000
CANARY: Final = 10
WAVES: Final = "10%,50%,100%"
#: Seconds a device runs the new model before it confirms it (its ``trial_ms``), and
#: that the controller holds each wave after its devices activated it (``--trial``).
TRIAL_S: Final = 5.0
#: Longest the benchmark waits for the rollout to end.
LIMIT_S: Final = 600.0
#: The devices run version 1 of the factory model; the rollout installs this one.
NEW_VERSION: Final = 2
ID_PREFIX: Final = "bench-"
#: Seconds between two looks at the state database while the rollout runs.
POLL_S: Final = 0.25
#: Seconds between two progress lines.
PROGRESS_S: Final = 5.0
#: Seconds the fleet goes on after the rollout ended (the messages still on their way).
TAIL_S: Final = 3.0
#: Largest ``--model-bytes``: the blob must fit a simulated device's 64 KiB slot.
MAX_MODEL_BYTES: Final = 60_000

BAR_WALL_S: Final = 120.0
BAR_BYTES_RATIO: Final = 1.15

#: The downlink kinds of a rollout.
DOWNLINK: Final = (Kind.OTA_JOB, Kind.OTA_CHUNK, Kind.CMD)


class BenchError(RuntimeError):
    """The benchmark cannot go on (a command failed, the fleet did not come up)."""


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactoryParts:
    """What the factory package holds that a conversion needs, read back from its files.

    Attributes:
        model_id: The model id.
        spec: The feature spec.
        threshold: The anomaly threshold.
        threshold_ceiling: The highest threshold a device may calibrate itself to.
        in_scale: Scale of the ``.tflite``'s int8 input.
        in_zero_point: Zero point of that input.
        layers: The dense layers, as :func:`vibewatch.testing.tflite.dense_graph` takes them.
        mean: Per-feature mean of the normalisation folded into the blob's input affine.
        std: Per-feature standard deviation of that normalisation.
        golden_inputs: The manifest's golden inputs, int8 ``[k, n_features]``.
        manifest: The factory manifest.
    """

    model_id: str
    spec: FeatureSpec
    threshold: float
    threshold_ceiling: float
    in_scale: float
    in_zero_point: int
    layers: tuple[tflite.Dense, ...]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    golden_inputs: npt.NDArray[np.int8]
    manifest: dict[str, Any]


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def factory_parts() -> FactoryParts:
    """The factory package's model as parts to convert again (:func:`convert_layers`).

    The layers come from ``model.tflite``; the normalisation from the blob's input affine
    (``q = x * mul + add`` with ``mul = 1 / (std * in_scale)`` and ``add = in_zero_point -
    mean * mul``, float32 after the 64-byte header, the padded model id and the padded
    band edges: ``vw_model.h``).
    """
    blob = FACTORY_MODEL.read_bytes()
    manifest = json.loads((FACTORY_MODEL.parent / MANIFEST).read_bytes())
    header = decode_header(blob)
    n = header.spec.n_features
    at = HEADER_BYTES + _pad4(len(header.model_id)) + _pad4(2 * (header.spec.n_bands + 1))
    mul = np.frombuffer(blob, "<f4", n, at).astype(np.float64)
    add = np.frombuffer(blob, "<f4", n, at + 4 * n).astype(np.float64)
    model = read_model((FACTORY_MODEL.parent / "model.tflite").read_bytes())
    graph = model.subgraphs[0]
    quantization = graph.tensors[graph.inputs[0]].quantization
    assert quantization is not None
    in_scale, in_zero_point = quantization.scale[0], quantization.zero_point[0]
    layers = []
    for op in graph.operators:
        weights = graph.tensors[op.inputs[1]]
        output = graph.tensors[op.outputs[0]]
        assert weights.quantization is not None and output.quantization is not None
        bias = None
        if len(op.inputs) == 3 and op.inputs[2] >= 0:
            bias = np.frombuffer(model.tensor_data(graph.tensors[op.inputs[2]]), "<i4").copy()
        layers.append(
            tflite.Dense(
                weights=np.frombuffer(model.tensor_data(weights), np.int8)
                .reshape(weights.shape)
                .copy(),
                weight_scales=weights.quantization.scale,
                out_scale=output.quantization.scale[0],
                out_zero_point=output.quantization.zero_point[0],
                bias=bias,
                relu=op.fully_connected is not None
                and op.fully_connected.activation == ActivationFunction.RELU,
            )
        )
    return FactoryParts(
        model_id=header.model_id,
        spec=header.spec,
        threshold=header.threshold,
        threshold_ceiling=header.threshold_ceiling,
        in_scale=in_scale,
        in_zero_point=in_zero_point,
        layers=tuple(layers),
        mean=(in_zero_point - add) / mul,
        std=1.0 / (mul * in_scale),
        golden_inputs=np.array([g["input"] for g in manifest["golden"]], dtype=np.int8),
        manifest=manifest,
    )


def widen(layers: Sequence[tflite.Dense], extra: int) -> tuple[tflite.Dense, ...]:
    """``layers`` (an autoencoder of four) with its first and third layers given ``extra``
    more units each: copies of its own units (weights, scales, bias), whose columns in the
    next layer's weights are zero, so the model's output does not change."""
    out = list(layers)
    for index in (0, 2):
        layer, after = out[index], out[index + 1]
        assert layer.bias is not None
        copies = np.arange(extra) % layer.weights.shape[0]
        out[index] = dataclasses.replace(
            layer,
            weights=np.concatenate([layer.weights, layer.weights[copies]]),
            weight_scales=[*layer.weight_scales, *(layer.weight_scales[i] for i in copies)],
            bias=np.concatenate([layer.bias, layer.bias[copies]]),
        )
        zeros = np.zeros((after.weights.shape[0], extra), dtype=np.int8)
        out[index + 1] = dataclasses.replace(
            after, weights=np.concatenate([after.weights, zeros], axis=1)
        )
    return tuple(out)


def convert_layers(
    parts: FactoryParts, layers: Sequence[tflite.Dense], version: int
) -> tuple[bytes, bytes]:
    """``layers`` as a ``.tflite`` file and the blob the project's converter makes of it,
    with the factory's normalisation, threshold (and its ceiling) and golden inputs."""
    graph = tflite.dense_graph(parts.in_scale, parts.in_zero_point, layers)
    model = tflite.write(graph)
    blob = convert(
        model,
        parts.spec,
        model_id=parts.model_id,
        version=version,
        mean=parts.mean,
        std=parts.std,
        threshold=parts.threshold,
        golden_inputs=parts.golden_inputs,
        threshold_ceiling=parts.threshold_ceiling,
    )
    return model, blob


def widening_for(parts: FactoryParts, target_bytes: int) -> int:
    """The fewest extra units (:func:`widen`) whose blob has at least ``target_bytes``."""

    def size(extra: int) -> int:
        return len(convert_layers(parts, widen(parts.layers, extra), 1)[1])

    low, high = 0, 1
    while size(high) < target_bytes:
        low, high = high, 2 * high
    while low < high:  # the size grows with the units
        middle = (low + high) // 2
        if size(middle) < target_bytes:
            low = middle + 1
        else:
            high = middle
    return low


def widened_package(
    directory: Path, key: Ed25519PrivateKey, *, version: int, target_bytes: int
) -> ModelPackage:
    """The factory model widened to a blob of at least ``target_bytes`` (module
    documentation), as version ``version``, packaged and signed with ``key``.

    Raises:
        BenchError: The conversion path does not rebuild the factory blob byte for byte,
            or the widened model needs more engine memory than a simulated device has.
    """
    parts = factory_parts()
    if convert_layers(parts, parts.layers, 1)[1] != FACTORY_MODEL.read_bytes():
        raise BenchError("the factory model, converted again, differs from its blob")
    extra = widening_for(parts, target_bytes)
    layers = widen(parts.layers, extra)
    model_tflite, blob = convert_layers(parts, layers, version)
    model = Model(blob)
    room = DeviceCapabilities(sample_rate_hz=parts.spec.sample_rate_hz).engine_work_bytes
    if model.ram_bytes > room:
        raise BenchError(f"the model needs {model.ram_bytes} bytes of engine memory, not {room}")
    manifest = {k: v for k, v in parts.manifest.items() if k not in ("format", "files")}
    dims = [int(layers[0].weights.shape[1]), *(int(layer.weights.shape[0]) for layer in layers)]
    manifest |= {
        **blob_fields(model),
        "architecture": {
            "dims": dims,
            "kind": "dense_autoencoder",
            "widened_from": f"{parts.model_id} version {parts.manifest['version']}",
        },
        "golden": golden_vectors(model, parts.golden_inputs),
    }
    return write_package(
        directory, tflite=model_tflite, vwm=blob, manifest=manifest, private_key=key
    )


# --- counting the downlink --------------------------------------------------------------------


class DownlinkCounter(BrokerCounter):
    """Sees every downlink OTA message through the broker and counts the PUBLISH bytes a
    device receives (:func:`publish_packet_bytes`, QoS 1).

    Attributes:
        messages: Messages seen, by kind.
        packet_bytes: PUBLISH bytes, by kind.
        jobs_again: Jobs beyond the first for their device.
        chunks_again: Chunks beyond the first for their device and offset.
        other_qos: Messages that did not arrive at QoS 1 (counted as QoS 1).
        last_at: ``time.monotonic()`` of the last message.
    """

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(port, prefix, DOWNLINK, "downlink counter")
        self._jobs: set[str] = set()
        self._chunks: set[tuple[str, int]] = set()
        self.messages: Counter[str] = Counter()
        self.packet_bytes: Counter[str] = Counter()
        self.jobs_again = 0
        self.chunks_again = 0
        self.other_qos = 0
        self.last_at = time.monotonic()

    @property
    def total_bytes(self) -> int:
        """PUBLISH bytes seen."""
        return self.packet_bytes.total()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        self.last_at = time.monotonic()
        device, kind = parse_topic(msg.topic, self._prefix)
        payload = bytes(msg.payload)
        self.messages[kind.value] += 1
        self.packet_bytes[kind.value] += publish_packet_bytes(len(msg.topic.encode()), len(payload))
        if msg.qos != 1:
            self.other_qos += 1
        if kind is Kind.OTA_JOB and payload:
            if device in self._jobs:
                self.jobs_again += 1
            self._jobs.add(device)
        elif kind is Kind.OTA_CHUNK:
            with contextlib.suppress(ProtocolError):
                now_ms = int(time.time() * 1000)
                chunk = decode_message(kind, device, payload, now_ms=now_ms, limits=self._limits)
                assert isinstance(chunk, OtaChunk)
                if (device, chunk.offset) in self._chunks:
                    self.chunks_again += 1
                self._chunks.add((device, chunk.offset))


# --- results ---------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything the run measured, printed as the table and the JSON object."""

    devices: int
    seed: int
    canary: int
    waves_plan: str
    trial_s: float
    model_bytes: int = 0
    model_units: int = 0
    model_dims: str = ""
    model_ram_bytes: int = 0
    connect_s: float = 0.0
    known_s: float = 0.0
    rollout: str = ""
    wave_sizes: list[int] = field(default_factory=list)
    wave_times: list[WaveTimes] = field(default_factory=list)
    deploy_s: float = 0.0
    elapsed_s: float | None = None
    phase: str = ""
    reason: str = ""
    status_phase: str = ""
    status_converged: bool = False
    status_counts: dict[str, int] = field(default_factory=dict)
    converged: int = 0
    bricked: int = 0
    on_factory: int = 0
    downlink_messages: dict[str, int] = field(default_factory=dict)
    downlink_bytes: dict[str, int] = field(default_factory=dict)
    jobs_again: int = 0
    chunks_again: int = 0
    chunks_served: int | None = None
    chunks_dropped: int | None = None
    controller_peak_rss_mb: float = 0.0
    controller_exit: int | None = None
    cpu_percent: dict[str, float] = field(default_factory=dict)
    realtime: bool | None = None

    @property
    def waves(self) -> int:
        """Waves of the rollout, the canaries' included."""
        return len(self.wave_sizes)

    @property
    def trials_s(self) -> float:
        """The configured trial periods on the rollout's path: one per wave."""
        return self.waves * self.trial_s

    @property
    def wall_seconds(self) -> float | None:
        """Deploy to the end, without the configured trial periods (None: no end)."""
        return None if self.elapsed_s is None else self.elapsed_s - self.trials_s

    @property
    def downlink_total(self) -> int:
        """Downlink PUBLISH bytes, every kind."""
        return sum(self.downlink_bytes.values())

    @property
    def bytes_sent_per_device(self) -> float:
        """Downlink PUBLISH bytes per device."""
        return self.downlink_total / self.devices

    def bars(self) -> list[tuple[str, bool, str]]:
        """Return ``(name, met, explanation)`` for every bar."""
        wall = self.wall_seconds
        limit = BAR_BYTES_RATIO * self.model_bytes
        return [
            (
                "converged == devices",
                self.converged == self.devices,
                f"{self.converged} of {self.devices}",
            ),
            ("bricked == 0", self.bricked == 0, f"{self.bricked}"),
            (
                f"wall_seconds <= {BAR_WALL_S:g}",
                wall is not None and wall <= BAR_WALL_S,
                "the rollout did not end"
                if wall is None
                else f"{wall:.1f}s ({self.elapsed_s:.1f}s - {self.waves} x {self.trial_s:g}s)",
            ),
            (
                f"bytes_sent_per_device <= {BAR_BYTES_RATIO:g} x model_bytes",
                self.model_bytes > 0 and self.bytes_sent_per_device <= limit,
                f"{self.bytes_sent_per_device:,.0f} vs {limit:,.0f}",
            ),
            (
                "ota status: completed, converged",
                self.status_phase == "completed" and self.status_converged,
                f"{self.status_phase or 'not read'}, converged {self.status_converged}",
            ),
        ]

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``."""
        wall = self.wall_seconds
        return {
            "devices": self.devices,
            "converged": self.converged,
            "bricked": self.bricked,
            "wall_seconds": None if wall is None else round(wall, 2),
            "bytes_sent_per_device": round(self.bytes_sent_per_device, 1),
            "model_bytes": self.model_bytes,
            "controller_peak_rss_mb": round(self.controller_peak_rss_mb, 1),
            "elapsed_s": None if self.elapsed_s is None else round(self.elapsed_s, 2),
            "trial_s": self.trial_s,
            "waves": self.waves,
            "wave_sizes": self.wave_sizes,
            "wave_times": [
                {k: v if v is None else round(v, 2) for k, v in dataclasses.asdict(w).items()}
                for w in self.wave_times
            ],
            "canary": self.canary,
            "rollout": self.rollout,
            "phase": self.phase,
            "reason": self.reason,
            "status_phase": self.status_phase,
            "status_converged": self.status_converged,
            "status_counts": self.status_counts,
            "on_factory": self.on_factory,
            "downlink_messages": self.downlink_messages,
            "downlink_bytes": self.downlink_bytes,
            "jobs_again": self.jobs_again,
            "chunks_again": self.chunks_again,
            "chunks_served": self.chunks_served,
            "chunks_dropped": self.chunks_dropped,
            "model_units": self.model_units,
            "model_ram_bytes": self.model_ram_bytes,
            "deploy_command_s": round(self.deploy_s, 2),
            "connect_s": round(self.connect_s, 2),
            "known_s": round(self.known_s, 2),
            "realtime": self.realtime,
            "cpu_percent": self.cpu_percent,
            "controller_exit": self.controller_exit,
            "seed": self.seed,
            "bars_met": all(met for _, met, _ in self.bars()),
        }


# --- the run ----------------------------------------------------------------------------------


def drive(simulation: Simulation, done: Callable[[], bool], limit_s: float) -> bool:
    """Step the fleet until ``done()`` (asked every :data:`POLL_S`) or ``limit_s`` passed;
    returns whether it is done."""
    deadline = time.monotonic() + limit_s
    next_look = 0.0
    while True:
        now = time.monotonic()
        if now >= next_look:
            if done():
                return True
            if now > deadline:
                return False
            next_look = now + POLL_S
        if simulation.step() == 0:
            time.sleep(0.01)


def fleet_figures(
    devices: Iterable[SimDevice], new_sha256: str, factory_sha256: str
) -> tuple[int, int, int]:
    """``(converged, bricked, on the factory model)`` from the devices' own slots.

    Converged: the active blob is the new one (its SHA-256 as the device computed it) and
    confirmed. Bricked: no valid active model (not exactly one ``active`` slot, one that
    is not what the device runs, or a blob that is neither the factory's nor the new one).
    """
    converged = bricked = on_factory = 0
    for device in devices:
        state = device.slots.state
        active = [slot for slot in state.slots.values() if slot.state == "active"]
        sha = state.model_sha256
        valid = (
            state.state in ("idle", "trial")
            and len(active) == 1
            and active[0].sha256 == sha
            and sha in (new_sha256, factory_sha256)
        )
        if not valid:
            bricked += 1
        elif sha == new_sha256 and state.state == "idle":
            converged += 1
        elif sha == factory_sha256:
            on_factory += 1
    return converged, bricked, on_factory


@dataclass(frozen=True)
class WaveTimes:
    """When a wave's devices got there, in the controller's time (its ``sent_s``,
    ``activated_s`` and ``changed_s`` of each device).

    Attributes:
        devices: Devices of the wave.
        started_s: When its jobs were due, after ``origin_s`` of :func:`wave_times`.
        activated_s: When its last device reported the new model active, after the wave's
            start (None: not every device did).
        done_s: When its last device reached an outcome, after the wave's start (None: not
            every device did).
    """

    devices: int
    started_s: float
    activated_s: float | None
    done_s: float | None


def wave_times(rollout: Rollout, origin_s: float) -> list[WaveTimes]:
    """The :class:`WaveTimes` of each wave of ``rollout`` that started; ``origin_s``: the
    wall-clock time (``time.time()``) the start times count from."""
    out = []
    for wave in range(rollout.waves):
        members = [p for p in rollout.devices.values() if p.wave == wave]
        starts = [p.sent_s for p in members if p.sent_s is not None]
        if not starts:
            break
        start = min(starts)
        activated = [p.activated_s for p in members if p.activated_s is not None]
        done = [p.changed_s for p in members if p.state in OUTCOMES]
        out.append(
            WaveTimes(
                devices=len(members),
                started_s=start - origin_s,
                activated_s=max(activated) - start if len(activated) == len(members) else None,
                done_s=max(done) - start if len(done) == len(members) else None,
            )
        )
    return out


_STOPPED = re.compile(r"chunks served (\d+), dropped (\d+)")


def vibewatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vibewatch ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "vibewatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def run(results: Results, model_bytes: int, limit_s: float) -> None:
    """Set everything up in a temporary directory, roll the model out, count."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vibewatch-ota-")))
        home = workdir / "home"
        private_path, public_path = (
            home / "keys" / "model-signing.key",
            home / "keys" / "model-signing.pub",
        )
        public = generate_keypair(private_path, public_path)
        key = load_private_key(private_path)
        progress(f"building a model of at least {model_bytes:,} bytes in {workdir}")
        package = widened_package(
            workdir / "package", key, version=NEW_VERSION, target_bytes=model_bytes
        )
        blob = package.vwm
        model = Model(blob)
        results.model_bytes = len(blob)
        dims = package.manifest["architecture"]["dims"]
        results.model_units = int(dims[1])
        results.model_dims = "-".join(str(d) for d in dims)
        results.model_ram_bytes = model.ram_bytes
        with Registry(home / "models", home / "state.db", public) as registry:
            registry.register(package.path)
        progress(
            f"{package.model_id} version {package.version}: {len(blob):,} bytes, "
            f"{results.model_units} hidden units, {model.ram_bytes} bytes of engine memory"
        )
        broker = stack.enter_context(LocalMosquitto(workdir=workdir / "mosquitto"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
        env |= {
            "VIBEWATCH_DATA_HOME": str(home),
            "VIBEWATCH_MQTT_PORT": str(broker.port),
            "VIBEWATCH_MQTT_CLIENT_ID": "bench",
        }
        controller = ServiceProcess(env, workdir, ("serve",), command="ota", name="ota")
        stack.callback(controller.close)
        controller.start()
        progress(
            f"mosquitto on port {broker.port}; vibewatch ota serve ready (pid {controller.pid})"
        )
        counter = DownlinkCounter(broker.port, DEFAULT_PREFIX)
        counter.start()
        stack.callback(counter.stop)
        db = open_state_db(home / "state.db")
        stack.callback(db.close)
        store = RolloutStore(db)
        settings = DeviceSettings(features_every=0, trial_ms=round(results.trial_s * 1000))
        scenario = Scenario(devices=results.devices, id_prefix=ID_PREFIX, seed=results.seed)
        factory = FACTORY_MODEL.read_bytes()
        simulation = Simulation(
            scenario,
            factory,
            public,
            host=broker.host,
            port=broker.port,
            prefix=DEFAULT_PREFIX,
            settings=settings,
            clock=SimClock(1.0, start_wall_ms=int(time.time() * 1000)),
        )
        progress(f"connecting {results.devices} devices")
        began = time.monotonic()
        try:
            simulation.start()
            results.connect_s = time.monotonic() - began
            known = drive(simulation, lambda: len(store.devices()) >= results.devices, 120.0)
            if not known:
                raise BenchError(
                    f"the controller knows {len(store.devices())} of {results.devices} devices"
                )
            results.known_s = time.monotonic() - began
            progress(
                f"connected in {results.connect_s:.1f}s; the controller knows every device "
                f"after {results.known_s:.1f}s"
            )
            roll_out(results, simulation, store, env, workdir, controller, broker, limit_s)
            drive(simulation, lambda: False, TAIL_S)  # what is still on its way
            quiet = time.monotonic() + 10.0
            while time.monotonic() - counter.last_at < 1.0 and time.monotonic() < quiet:
                time.sleep(0.1)
            results.realtime = simulation.summary().realtime
            results.converged, results.bricked, results.on_factory = fleet_figures(
                simulation.fleet.devices.values(),
                hashlib.sha256(blob).hexdigest(),
                hashlib.sha256(factory).hexdigest(),
            )
        finally:
            simulation.close()
        results.downlink_messages = dict(sorted(counter.messages.items()))
        results.downlink_bytes = dict(sorted(counter.packet_bytes.items()))
        results.jobs_again, results.chunks_again = counter.jobs_again, counter.chunks_again
        if counter.other_qos:
            progress(f"{counter.other_qos} downlink messages arrived at another QoS than 1")
        if results.rollout:
            shown = vibewatch(env, "ota", "status", results.rollout, "--json")
            if shown.returncode == 0:
                status = json.loads(shown.stdout)
                results.status_phase, results.status_converged = (
                    status["phase"],
                    status["converged"],
                )
                results.status_counts = status["counts"]
            else:
                progress(f"vibewatch ota status failed ({shown.returncode}): {shown.stderr}")
        results.controller_exit = controller.stop()  # reads VmHWM first
        results.controller_peak_rss_mb = controller.peak_rss_mb
        if results.controller_exit != 0:
            tail = controller.log_tail()
            progress(f"vibewatch ota serve exited with {results.controller_exit}:\n{tail}")
        stopped = _STOPPED.search(controller.log())
        if stopped is not None:
            results.chunks_served, results.chunks_dropped = int(stopped[1]), int(stopped[2])
        progress("stopping mosquitto")


def roll_out(
    results: Results,
    simulation: Simulation,
    store: RolloutStore,
    env: dict[str, str],
    workdir: Path,
    controller: ServiceProcess,
    broker: LocalMosquitto,
    limit_s: float,
) -> None:
    """Deploy, and drive the fleet until the rollout ended (or ``limit_s`` passed)."""
    assert broker.pid is not None
    meter = CpuMeter({"bench": os.getpid(), "controller": controller.pid, "mosquitto": broker.pid})
    command = [
        sys.executable, "-m", "vibewatch", "ota", "deploy", "vibewatch-ae", str(NEW_VERSION),
        "--all", "--canary", str(results.canary), "--waves", results.waves_plan,
        "--trial", f"{results.trial_s:g}s", "--json",
    ]  # fmt: skip
    output = workdir / "deploy.json"
    progress(f"deploying: vibewatch {' '.join(command[3:])}")
    meter.start()
    began, began_wall = time.monotonic(), time.time()
    with output.open("w") as out, (workdir / "deploy.err").open("w") as err:
        deploy = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    next_line = began + PROGRESS_S

    def ended() -> bool:
        nonlocal next_line
        if not results.rollout:
            code = deploy.poll()
            if code is None:
                return False
            if code != 0:
                why = (workdir / "deploy.err").read_text()
                raise BenchError(f"vibewatch ota deploy exited with {code}: {why}")
            created = json.loads(output.read_text())
            results.rollout, results.deploy_s = created["rollout"], time.monotonic() - began
            waves = Counter(part["wave"] for part in created["devices"].values())
            results.wave_sizes = [waves[number] for number in sorted(waves)]
            progress(
                f"{results.rollout} created in {results.deploy_s:.1f}s: waves of "
                f"{' + '.join(map(str, results.wave_sizes))} devices"
            )
        rollout = store.load(results.rollout)
        now = time.monotonic()
        over = rollout.phase.value in ("completed", "aborted")
        if over:
            results.elapsed_s = now - began
            results.phase, results.reason = rollout.phase.value, rollout.reason
            results.wave_times = wave_times(rollout, began_wall)
        if over or now >= next_line:
            next_line = now + PROGRESS_S
            counts = ", ".join(f"{n} {state}" for state, n in sorted(rollout.counts().items()))
            sim = simulation.progress()
            slots = ", ".join(f"{n} {state}" for state, n in sorted(sim.ota.items())) or "idle"
            progress(
                f"t={now - began:6.1f}s  {rollout.phase.value} wave {rollout.wave + 1}/"
                f"{rollout.waves}: {counts}  (slots: {slots})"
            )
        return over

    if not drive(simulation, ended, limit_s):
        progress(f"the rollout did not end within {limit_s:g}s")
    results.cpu_percent = meter.stop()
    if deploy.poll() is None:
        deploy.kill()
        deploy.wait()


# --- output ----------------------------------------------------------------------------------


def _after(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}s later"


def table(results: Results) -> str:
    """Render the results as a plain-text table."""
    wall = results.wall_seconds
    kinds = ", ".join(
        f"{kind} {n:,} ({results.downlink_bytes.get(kind, 0):,} B)"
        for kind, n in results.downlink_messages.items()
    )
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in results.cpu_percent.items())
    served = (
        "not logged"
        if results.chunks_served is None
        else f"{results.chunks_served:,} served, {results.chunks_dropped:,} requests dropped"
    )
    rows: list[tuple[str, str]] = [
        (
            "fleet",
            f"{results.devices:,} healthy devices on the factory model, speedup 1 "
            f"(seed {results.seed})",
        ),
        (
            "  all connected / known to the controller",
            f"{results.connect_s:.1f}s / {results.known_s:.1f}s",
        ),
        (
            "model",
            f"{results.model_bytes:,} bytes, dims {results.model_dims}, "
            f"{results.model_ram_bytes} B engine memory",
        ),
        (
            "rollout",
            f"{results.rollout or '-'}: waves of "
            f"{' + '.join(map(str, results.wave_sizes)) or '-'}, trial {results.trial_s:g}s; "
            f"{results.phase or 'did not end'}{f' ({results.reason})' if results.reason else ''}",
        ),
        ("  deploy command", f"{results.deploy_s:.1f}s"),
        *(
            (
                f"  wave {number} ({times.devices:,} devices)",
                f"started at {times.started_s:.1f}s; all active {_after(times.activated_s)}, "
                f"all done {_after(times.done_s)}",
            )
            for number, times in enumerate(results.wave_times, 1)
        ),
        (
            "  deploy to end",
            "-" if results.elapsed_s is None else f"{results.elapsed_s:.1f}s",
        ),
        (
            "  without the trials",
            "-"
            if wall is None
            else f"{wall:.1f}s ({results.waves} waves x {results.trial_s:g}s subtracted)",
        ),
        (
            "  ota status",
            f"{results.status_phase or '-'}, converged {results.status_converged}, "
            + (", ".join(f"{n} {s}" for s, n in sorted(results.status_counts.items())) or "-"),
        ),
        (
            "devices (from their slots)",
            f"{results.converged:,} on the new model, {results.on_factory:,} on the factory "
            f"model, {results.bricked:,} without a valid model",
        ),
        ("  kept up with their windows", {None: "-", True: "yes", False: "NO"}[results.realtime]),
        (
            "downlink (MQTT 5 PUBLISH)",
            f"{results.downlink_total:,} bytes: {results.bytes_sent_per_device:,.0f} per device, "
            f"{results.bytes_sent_per_device / max(1, results.model_bytes):.3f} x the model",
        ),
        ("  by kind", kinds or "-"),
        (
            "  sent again",
            f"{results.jobs_again:,} jobs, {results.chunks_again:,} chunks",
        ),
        ("controller chunks", served),
        ("controller peak RSS", f"{results.controller_peak_rss_mb:.1f} MiB"),
        ("CPU, % of one core", cpu or "-"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    for name, met, detail in results.bars():
        lines.append(f"{'ok  ' if met else 'MISS'}  {name:<44} {detail}")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench ota",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices", type=int, default=DEVICES, help=f"devices in the fleet (default {DEVICES})"
    )
    parser.add_argument(
        "--model-bytes",
        type=int,
        default=MODEL_BYTES,
        help=f"blob bytes the model reaches at least (default {MODEL_BYTES:,})",
    )
    parser.add_argument(
        "--canary", type=int, default=CANARY, help=f"devices of the first wave (default {CANARY})"
    )
    parser.add_argument(
        "--waves",
        default=WAVES,
        help=f"the later waves' shares of the fleet (default {WAVES.replace('%', '%%')})",
    )
    parser.add_argument(
        "--trial",
        type=float,
        default=TRIAL_S,
        help=f"seconds of trial: the devices' trial_ms, ota deploy --trial (default {TRIAL_S:g})",
    )
    parser.add_argument(
        "--limit",
        type=float,
        default=LIMIT_S,
        help=f"seconds to wait for the rollout to end at most (default {LIMIT_S:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the machines (default 0)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout (the table on stderr)"
    )
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error(f"--devices must be >= 1, not {args.devices}")
    if not 1 <= args.canary <= args.devices:
        parser.error(f"--canary must be 1 to {args.devices}, not {args.canary}")
    factory = FACTORY_MODEL.stat().st_size
    if not factory <= args.model_bytes <= MAX_MODEL_BYTES:
        parser.error(f"--model-bytes must be {factory:,} to {MAX_MODEL_BYTES:,}")
    if not args.trial > 0:
        parser.error(f"--trial must be > 0, not {args.trial:g}")
    if not args.limit > 0:
        parser.error(f"--limit must be > 0, not {args.limit:g}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = parse_args(argv)
    results = Results(
        devices=args.devices,
        seed=args.seed,
        canary=args.canary,
        waves_plan=args.waves,
        trial_s=args.trial,
    )
    began = time.monotonic()
    try:
        run(results, args.model_bytes, args.limit)
    except KeyboardInterrupt:
        progress("interrupted; servers and processes stopped")
        return 130
    except BenchError as exc:
        progress(f"stopped: {exc}")
    progress(f"done in {time.monotonic() - began:.1f}s")
    return finish(table(results), results.as_json(), results.bars(), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
