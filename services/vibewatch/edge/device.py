"""A vibration sensor in Python: the firmware's device layer (``vw_device.c``) over RAM.

:class:`Device` runs the C device layer on top of a :class:`~vibewatch.edge.ota.SlotDevice`
(its model slots and storage), with a port whose callbacks are Python: ``publish`` receives
every uplink message exactly as the firmware writes it, and the two clocks are whatever
the caller says. The simulator and the tests drive exactly the code the devices run::

    slots = SlotDevice(public_key, DeviceCapabilities(sample_rate_hz=48_000))
    slots.boot()
    slots.provision(factory_blob)
    device = Device(slots, firmware="1.0.0", publish=lambda suffix, payload: ...,
                    clock_ms=lambda: 0, wall_ms=lambda: int(time.time() * 1000))
    device.connected()                  # the retained status message
    device.window(samples)              # telemetry, events and features as they fall due

A power cycle is ``slots.boot()`` followed by a new :class:`Device` on the same slots:
the boot count lives in storage, so sequence numbers go on without repeating.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from vibewatch.edge import _lib
from vibewatch.edge.ota import SlotDevice, _Port
from vibewatch.errors import EdgeError

__all__ = ["Device", "DeviceCounters", "DeviceSettings", "Publish"]

Publish = Callable[[str, bytes], bool]
"""Called with (topic suffix, payload); returns whether the message was taken."""

_VP = ctypes.c_void_p
_U32 = ctypes.c_uint32
_NOW = ctypes.CFUNCTYPE(_U32, _VP)
_PUBLISH = ctypes.CFUNCTYPE(ctypes.c_int, _VP, ctypes.c_char_p, _VP, ctypes.c_size_t)
_WALL = ctypes.CFUNCTYPE(ctypes.c_uint64, _VP)
_READ = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _U32, _VP, _U32)
_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _U32, _VP, _U32)
_MAP = ctypes.CFUNCTYPE(_VP, _VP, _U32, _U32)
_VERIFY = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _VP, ctypes.c_size_t, _VP)

_VW_OK = 0
_VW_ERR_STORAGE = 18


@dataclass(frozen=True)
class DeviceSettings:
    """What the device does per window (``vw_device_settings_t``).

    Attributes:
        k: Windows at or above the threshold, of the last ``n``, that start an anomaly.
        n: Length of that history, 1..32.
        m: Consecutive windows below the release level that end an anomaly.
        release_ratio: Release level / threshold, in (0, 1].
        batch_windows: Readings per telemetry message, 1..100.
        batch_ms: A partial batch is sent once its first reading is this old; 0: never.
        features_every: One feature vector in every so many windows; 0: none.
        calibrate_windows: Windows a ``calibrate`` command scores.
        calibrate_target: Per-window false-alarm target of the threshold a calibration
            sets by the tail rule (``vw_tail.h``), in ``(0, 0.5]``.
        ota_window: Chunk requests outstanding during a download, 1..8.
        ota_timeout_ms: A chunk request is sent again after this.
        trial_ms: A new model runs this long (by the since-boot clock) before it is confirmed.
    """

    k: int = 3
    n: int = 5
    m: int = 5
    release_ratio: float = 0.8
    batch_windows: int = 10
    batch_ms: int = 10_000
    features_every: int = 60
    calibrate_windows: int = 600
    calibrate_target: float = 0.001
    ota_window: int = 4
    ota_timeout_ms: int = 5000
    trial_ms: int = 600_000


class DeviceCounters(NamedTuple):
    """Counters of the device since it booted (``vw_device_counters_t``)."""

    windows: int
    events: int
    published: int
    publish_failures: int
    readings_dropped: int
    unsynced_windows: int
    commands: int
    commands_unanswered: int
    chunk_requests: int
    chunks_ignored: int


@cache
def _core() -> ctypes.CDLL:
    """The library with the device prototypes declared."""
    status = ctypes.c_int
    return _lib.declare(
        [
            ("vwpy_device_sizeof", ctypes.c_size_t, []),
            ("vwpy_device_config_sizeof", ctypes.c_size_t, []),
            (
                "vwpy_device_config",
                None,
                [
                    _VP,
                    ctypes.c_char_p,
                    ctypes.c_char_p,
                    _U32,
                    ctypes.c_uint16,
                    ctypes.c_uint16,
                    _VP,
                    ctypes.c_size_t,
                    ctypes.POINTER(_U32),
                    ctypes.c_float,
                    ctypes.c_float,
                ],
            ),
            ("vw_device_required_bytes", ctypes.c_size_t, [_VP]),
            (
                "vw_device_init",
                status,
                [_VP, ctypes.POINTER(_Port), _VP, _VP, _VP, ctypes.c_size_t],
            ),
            ("vw_device_window_length", ctypes.c_uint16, [_VP]),
            (
                "vw_device_last_will",
                status,
                [_VP, _VP, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
            ),
            ("vw_device_connected", status, [_VP]),
            ("vw_device_window", status, [_VP, ctypes.POINTER(ctypes.c_float)]),
            ("vw_device_poll", status, [_VP]),
            ("vw_device_command", status, [_VP, ctypes.c_char_p, ctypes.c_size_t]),
            ("vw_device_ota_job", status, [_VP, ctypes.c_char_p, ctypes.c_size_t]),
            ("vw_device_ota_chunk", status, [_VP, ctypes.c_char_p, ctypes.c_size_t]),
            ("vwpy_device_counters", None, [_VP, ctypes.POINTER(_U32)]),
        ]
    )


def _fit(value: int, bits: int, name: str) -> int:
    if not 0 <= value < 1 << bits:
        raise EdgeError("arg", f"{name} = {value} is outside 0..{(1 << bits) - 1}")
    return value


class Device:
    """One device: the C device layer over a :class:`SlotDevice` that has booted a model.

    Args:
        slots: The device's model slots and storage, booted with a model.
        firmware: Firmware version, 1..32 printable ASCII characters without space, ``"``
            or ``\\``.
        publish: Receives every uplink message; returns whether it was taken.
        clock_ms: Milliseconds since boot (the port's ``now_ms``; wraps at 2**32).
        wall_ms: Wall-clock milliseconds since the epoch; 0 while unknown.
        capabilities: Names the status message lists.
        settings: Per-window behaviour.
        max_features: Longest feature vector a model may have.

    Raises:
        EdgeError: The C status name as ``reason``: ``arg`` for a refused setting,
            ``no_model``, ``spec`` (the model does not fit), ``storage``.
    """

    def __init__(
        self,
        slots: SlotDevice,
        *,
        firmware: str,
        publish: Publish,
        clock_ms: Callable[[], int],
        wall_ms: Callable[[], int],
        capabilities: Sequence[str] = (),
        settings: DeviceSettings = DeviceSettings(),
        max_features: int = 1028,
    ) -> None:
        self._core = _core()
        handles = slots.handles()
        self._slots = slots  # keeps the C memory the device points into alive
        self._handles = handles
        self._publish = publish
        self._clock_ms = clock_ms
        self._wall_ms = wall_ms
        self._firmware = firmware.encode("ascii", "replace")
        self._capabilities = ",".join(capabilities).encode("ascii", "replace")
        values = (_U32 * 10)(
            _fit(settings.k, 32, "k"),
            _fit(settings.n, 32, "n"),
            _fit(settings.m, 32, "m"),
            _fit(settings.batch_windows, 32, "batch_windows"),
            _fit(settings.batch_ms, 32, "batch_ms"),
            _fit(settings.features_every, 32, "features_every"),
            _fit(settings.calibrate_windows, 32, "calibrate_windows"),
            _fit(settings.ota_window, 32, "ota_window"),
            _fit(settings.ota_timeout_ms, 32, "ota_timeout_ms"),
            _fit(settings.trial_ms, 32, "trial_ms"),
        )
        self._config = _lib.buffer(self._core.vwpy_device_config_sizeof())
        self._core.vwpy_device_config(
            self._config,
            self._firmware,
            self._capabilities,
            handles.record_addr,
            _fit(handles.max_window, 16, "max_window"),
            _fit(max_features, 16, "max_features"),
            ctypes.cast(handles.engine_work, _VP),
            ctypes.sizeof(handles.engine_work),
            values,
            settings.release_ratio,
            settings.calibrate_target,
        )
        need = self._core.vw_device_required_bytes(self._config)
        if need == 0:
            raise EdgeError("arg", f"the device layer refuses {firmware!r}, {settings}")
        self._work = _lib.buffer(need)
        # the port's struct stores plain pointers: the callback objects are held here
        self._callbacks = (_NOW(self._now), _PUBLISH(self._send), _WALL(self._wall))
        now, send, wall = (ctypes.cast(callback, _VP) for callback in self._callbacks)
        self._port = _Port(
            None,
            now,
            _READ(handles.read),
            _WRITE(handles.write),
            _MAP(handles.map),
            _VERIFY(handles.verify),
            send,
            wall,
        )
        self._dev = _lib.buffer(self._core.vwpy_device_sizeof())
        _lib.check(
            self._core.vw_device_init(
                self._dev, ctypes.byref(self._port), self._config, handles.ota, self._work, need
            ),
            "starting the device",
        )

    # ---- the port ----

    def _now(self, _ctx: int | None) -> int:
        return self._clock_ms() & 0xFFFFFFFF

    def _wall(self, _ctx: int | None) -> int:
        return max(0, self._wall_ms())

    def _send(
        self, _ctx: int | None, suffix: bytes | None, payload: int | None, length: int
    ) -> int:
        data = ctypes.string_at(payload, length) if payload else b""
        try:
            taken = self._publish((suffix or b"").decode("ascii"), data)
        except Exception:  # a callback error must not unwind through C
            taken = False
        return _VW_OK if taken else _VW_ERR_STORAGE

    # ---- the device ----

    @property
    def powered(self) -> bool:
        """False once a power cut was injected into its storage (see
        :meth:`SlotDevice.inject_reset`): it takes nothing more until it boots again."""
        return self._slots.powered

    @property
    def window_length(self) -> int:
        """Samples per window of the active model."""
        return int(self._core.vw_device_window_length(self._dev))

    def last_will(self) -> bytes:
        """The payload the MQTT client registers as the last will on ``status``."""
        out = ctypes.create_string_buffer(64)
        length = ctypes.c_size_t(0)
        _lib.check(
            self._core.vw_device_last_will(self._dev, out, len(out), ctypes.byref(length)),
            "writing the last will",
        )
        return out.raw[: length.value]

    def connected(self) -> None:
        """The connection is up: publish the retained birth message.

        Raises:
            EdgeError: ``state`` before the wall clock is known; the port's refusal.
        """
        _lib.check(self._core.vw_device_connected(self._dev), "publishing the status")

    def window(self, samples: npt.ArrayLike) -> None:
        """Score one window and publish what falls due.

        Raises:
            EdgeError: ``arg`` for a window of the wrong length; ``input`` for a
                non-finite sample (the window is skipped).
        """
        x = np.ascontiguousarray(samples, dtype=np.float32).ravel()
        if x.size != self.window_length:
            raise EdgeError(
                "arg", f"a window of {x.size} samples; the model takes {self.window_length}"
            )
        pointer = x.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        _lib.check(self._core.vw_device_window(self._dev, pointer), "scoring a window")

    def command(self, payload: bytes) -> None:
        """A ``cmd`` message arrived: carry it out and answer on ``cmd/reply``.

        Raises:
            EdgeError: ``json`` or ``message`` for a payload without a readable id and
                ``state`` before the wall clock is known (not answered); the port's
                refusal of the reply.
        """
        _lib.check(self._core.vw_device_command(self._dev, payload, len(payload)), "a command")

    def ota_job(self, payload: bytes) -> None:
        """An ``ota/job`` message arrived: start or resume the download, or report why not.

        Raises:
            EdgeError: ``json``/``message`` for a payload without a readable job id,
                ``state`` before the wall clock is known, ``storage``.
        """
        _lib.check(self._core.vw_device_ota_job(self._dev, payload, len(payload)), "an OTA job")

    def ota_chunk(self, payload: bytes) -> None:
        """An ``ota/chunk`` message arrived: store it if it is the current job's.

        Raises:
            EdgeError: the chunk parser's or the OTA code's refusal; ``state`` for a
                chunk of no current job.
        """
        _lib.check(self._core.vw_device_ota_chunk(self._dev, payload, len(payload)), "a chunk")

    def poll(self) -> None:
        """Time passes: a telemetry batch whose first reading is old enough is sent, chunks
        that did not come are asked for again, a trial that lasted is confirmed."""
        _lib.check(self._core.vw_device_poll(self._dev), "polling")

    @property
    def counters(self) -> DeviceCounters:
        """Counters since the device booted."""
        out = (_U32 * len(DeviceCounters._fields))()
        self._core.vwpy_device_counters(self._dev, out)
        return DeviceCounters(*out)
