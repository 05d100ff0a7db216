"""A device's A/B model slots, in Python: the firmware's OTA code (``vw_ota.c``) over RAM.

:class:`SlotDevice` is one device's OTA state machine, backed by the same C code as the
firmware, with its persistent storage in a bytearray-like buffer and Ed25519 signature
checks by the ``cryptography`` package. It can cut the power after (or in the middle of)
any storage write, which is how the tests prove that an install never leaves a device
without a valid model. ``docs/ota-slots.md`` describes the storage layout and the states.

Typical use::

    device = SlotDevice(public_key, DeviceCapabilities(sample_rate_hz=3200))
    device.boot()
    device.provision(factory_blob)
    manifest = Manifest.for_blob("pump", 7, blob, chunk_size=1024)
    device.begin(manifest, manifest.sign(private_key))
    while (want := device.next_missing()) is not None:
        offset, length = want
        device.chunk(offset, blob[offset : offset + length])
    device.finish()   # verified and active, on trial
    device.confirm()  # keep it (a reset before this falls back)
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vibewatch.edge import _lib
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import EdgeError
from vibewatch.protocol import (
    ID_MAX_LEN,
    ID_PATTERN,
    ID_RE,
    MAX_CHUNK_BYTES,
    MAX_MODEL_BYTES,
    MIN_CHUNK_SIZE,
    MODEL_VERSION_MAX,
    DeviceLimits,
    signed_model_text,
)

# The wire contract's bounds (the ota/job message), which are the firmware's.
MAX_ID = ID_MAX_LEN
MAX_BLOB_BYTES = MAX_MODEL_BYTES
MIN_CHUNK = MIN_CHUNK_SIZE
MAX_CHUNK = MAX_CHUNK_BYTES
SIGNATURE_BYTES = 64
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

OtaStateName = Literal["no_model", "idle", "downloading", "trial"]
SlotStateName = Literal["active", "standby", "empty", "invalid"]
EventName = Literal["none", "activated", "confirmed", "failed", "rolled_back"]
_STATES: tuple[OtaStateName, ...] = ("no_model", "idle", "downloading", "trial")
_EVENTS: tuple[EventName, ...] = ("none", "activated", "confirmed", "failed", "rolled_back")
_SLOT_STATES: tuple[SlotStateName, ...] = ("empty", "standby", "invalid")
_SLOT_NAMES = ("a", "b")


@dataclass(frozen=True)
class Manifest:
    """The signed description of a model blob to install (the ``ota/job`` message).

    Attributes:
        model_id: :data:`~vibewatch.protocol.ID_PATTERN`; must equal the blob's id.
        model_version: ``0..``:data:`~vibewatch.protocol.MODEL_VERSION_MAX`; must equal the
            blob's version and, unless ``rollback``, be above the active model's.
        size: Blob bytes, 1..16 MiB.
        sha256: SHA-256 of the blob, lowercase hex.
        chunk_size: Bytes per chunk, 64..65536 (a transport parameter: not signed).
        rollback: The signer allows this version even if it is not above the active one.
    """

    model_id: str
    model_version: int
    size: int
    sha256: str
    chunk_size: int = 1024
    rollback: bool = False

    def __post_init__(self) -> None:
        if not ID_RE.fullmatch(self.model_id):
            raise EdgeError("arg", f"model id {self.model_id!r} is not {ID_PATTERN}")
        if not 0 <= self.model_version <= MODEL_VERSION_MAX:
            raise EdgeError("arg", f"model version {self.model_version} is not a 32-bit unsigned")
        if not 1 <= self.size <= MAX_BLOB_BYTES:
            raise EdgeError("arg", f"size {self.size} not in 1..{MAX_BLOB_BYTES}")
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise EdgeError("arg", f"sha256 {self.sha256!r} is not 64 lowercase hex digits")
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise EdgeError("arg", f"chunk size {self.chunk_size} not in {MIN_CHUNK}..{MAX_CHUNK}")

    @classmethod
    def for_blob(
        cls,
        model_id: str,
        model_version: int,
        blob: bytes,
        *,
        chunk_size: int = 1024,
        rollback: bool = False,
    ) -> Manifest:
        """The manifest of ``blob`` (its size and SHA-256 computed here)."""
        return cls(
            model_id,
            model_version,
            len(blob),
            hashlib.sha256(blob).hexdigest(),
            chunk_size=chunk_size,
            rollback=rollback,
        )

    def signed_text(self) -> bytes:
        """The exact bytes the signature covers (``docs/ota-slots.md``)::

        vw-model-v1\\n{model_id}\\n{model_version}\\n{size}\\n{sha256}\\n[rollback\\n]
        """
        return signed_model_text(
            self.model_id, self.model_version, self.size, self.sha256, rollback=self.rollback
        )

    def sign(self, private_key: Ed25519PrivateKey) -> bytes:
        """Ed25519 signature (64 bytes) of :meth:`signed_text`."""
        return private_key.sign(self.signed_text())


@dataclass(frozen=True)
class DeviceCapabilities:
    """What a device can run: a model that needs more is refused with ``spec``.

    Attributes:
        sample_rate_hz: The accelerometer's sample rate; a model must use exactly this.
        max_window: Largest DSP window the device's memory allows (256..4096).
        engine_work_bytes: Engine working memory available for one inference.
    """

    sample_rate_hz: int
    max_window: int = 4096
    engine_work_bytes: int = 8192


@dataclass(frozen=True)
class SlotInfo:
    """One model slot, as the ``status`` message reports it.

    Attributes:
        state: ``active``, ``standby`` (a valid model, the fallback), ``empty`` (nothing, or
            a download being written) or ``invalid`` (refused, rolled back or damaged).
        version: Version of the model it holds or held (0 when empty).
        size: Blob bytes.
        sha256: SHA-256 of the blob, lowercase hex.
    """

    state: SlotStateName
    version: int
    size: int
    sha256: str


@dataclass(frozen=True)
class OtaState:
    """A snapshot of a device's OTA state.

    Attributes:
        state: ``no_model``, ``idle``, ``downloading`` or ``trial`` (active, unconfirmed).
        active_slot: ``a`` or ``b``; ``None`` without a model.
        model_id: Id of the active model (``None`` without a model).
        model_version: Its version.
        model_sha256: SHA-256 of its blob (computed by the device), lowercase hex.
        slots: Slot ``a`` and ``b``.
        received_chunks: Chunks of the download stored so far.
        total_chunks: Chunks of the download (0 when not downloading).
        download_version: Version being downloaded, or ``None``.
        last_event: Outcome of the last install: ``none``, ``activated``, ``confirmed``,
            ``failed`` or ``rolled_back``.
        last_error: Why the last install failed (the C status name), or ``None``.
    """

    state: OtaStateName
    active_slot: str | None
    model_id: str | None
    model_version: int | None
    model_sha256: str | None
    slots: dict[str, SlotInfo]
    received_chunks: int
    total_chunks: int
    download_version: int | None
    last_event: EventName
    last_error: str | None


@dataclass(frozen=True)
class Layout:
    """Storage addresses of the OTA region (``vw_ota_layout_t``)."""

    meta: tuple[int, int]
    bitmap: int
    bitmap_bytes: int
    slots: tuple[int, int]
    end: int


# ---- mirrors of the C structs (sizes checked against the library on load) ----

_U8, _U16, _U32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32
_VP = ctypes.c_void_p
_READ = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _U32, _VP, _U32)
_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _U32, _VP, _U32)
_MAP = ctypes.CFUNCTYPE(_VP, _VP, _U32, _U32)
_VERIFY = ctypes.CFUNCTYPE(ctypes.c_int, _VP, _VP, ctypes.c_size_t, _VP)


class _Port(ctypes.Structure):
    _fields_ = (
        ("ctx", _VP),
        ("now_ms", _VP),
        ("storage_read", _READ),
        ("storage_write", _WRITE),
        ("storage_map", _MAP),
        ("verify_signature", _VERIFY),
        ("publish", _VP),
        ("time_ms", _VP),
    )


class _Config(ctypes.Structure):
    _fields_ = (
        ("storage_base", _U32),
        ("slot_bytes", _U32),
        ("sample_rate_hz", _U32),
        ("max_window", _U16),
        ("engine_work", _VP),
        ("engine_work_bytes", ctypes.c_size_t),
    )


class _Layout(ctypes.Structure):
    _fields_ = (
        ("meta", _U32 * 2),
        ("bitmap", _U32),
        ("bitmap_bytes", _U32),
        ("slot", _U32 * 2),
        ("end", _U32),
    )


class _Manifest(ctypes.Structure):
    _fields_ = (
        ("model_id", ctypes.c_char * (MAX_ID + 1)),
        ("rollback", _U8),
        ("model_version", _U32),
        ("size", _U32),
        ("chunk_size", _U32),
        ("sha256", _U8 * 32),
    )


class _SlotInfo(ctypes.Structure):
    _fields_ = (("state", _U8), ("version", _U32), ("size", _U32), ("sha256", _U8 * 32))


class _Info(ctypes.Structure):
    _fields_ = (
        ("state", _U8),
        ("active_slot", _U8),
        ("last_event", _U8),
        ("last_status", _U8),
        ("slot", _SlotInfo * 2),
        ("seq", _U32),
        ("received_chunks", _U32),
        ("total_chunks", _U32),
        ("download", _Manifest),
    )


_MIRRORS = (_Port, _Config, _Layout, _Manifest, _Info)


@cache
def _core() -> ctypes.CDLL:
    """The library with the OTA prototypes declared and the struct mirrors checked."""
    p = ctypes.POINTER
    status = ctypes.c_int
    core = _lib.declare(
        [
            ("vw_ota_layout", status, [p(_Config), p(_Layout)]),
            ("vw_ota_init", status, [_VP, p(_Port), p(_Config)]),
            ("vw_ota_provision", status, [_VP, ctypes.c_char_p, _U32]),
            ("vw_ota_begin", status, [_VP, p(_Manifest), ctypes.c_char_p]),
            ("vw_ota_chunk", status, [_VP, _U32, ctypes.c_char_p, _U32]),
            ("vw_ota_next_missing", status, [_VP, p(_U32), p(_U32)]),
            ("vw_ota_finish", status, [_VP]),
            ("vw_ota_confirm", status, [_VP]),
            ("vw_ota_info", status, [_VP, p(_Info)]),
            ("vwpy_ota_sizeof", ctypes.c_size_t, [ctypes.c_int]),
        ]
    )
    for which, mirror in enumerate(_MIRRORS, start=1):
        if core.vwpy_ota_sizeof(which) != ctypes.sizeof(mirror):
            raise EdgeError("build", f"{mirror.__name__} does not match the compiled struct")
    return core


def _to_c(manifest: Manifest) -> _Manifest:
    m = _Manifest()
    m.model_id = manifest.model_id.encode("ascii")
    m.rollback = int(manifest.rollback)
    m.model_version = manifest.model_version
    m.size = manifest.size
    m.chunk_size = manifest.chunk_size
    m.sha256[:] = bytes.fromhex(manifest.sha256)
    return m


@dataclass(frozen=True)
class SlotHandles:
    """A :class:`SlotDevice`'s C state and port callbacks, for the device layer.

    Attributes:
        ota: The ``vw_ota_t`` memory.
        engine_work: The engine memory the OTA code and the device share.
        record_addr: Storage address of the device layer's records, after the OTA
            region (:data:`DEVICE_RECORD_BYTES`).
        max_window: Largest window a model may have.
        read: ``storage_read`` callback (ctx, addr, buf, len) -> status.
        write: ``storage_write`` callback.
        map: ``storage_map`` callback (ctx, addr, len) -> address or None.
        verify: ``verify_signature`` callback (ctx, msg, len, sig) -> 1 or 0.
    """

    ota: ctypes.Array[ctypes.c_char]
    engine_work: ctypes.Array[ctypes.c_char]
    record_addr: int
    max_window: int
    read: Callable[[int | None, int, int | None, int], int]
    write: Callable[[int | None, int, int | None, int], int]
    map: Callable[[int | None, int, int], int | None]
    verify: Callable[[int | None, int | None, int, int | None], int]


DEVICE_RECORD_BYTES = 48
"""Storage after the OTA region for the device layer's records: two boot records and
the calibration record (``VW_DEVICE_STORAGE_BYTES``, ``vw_device.h``)."""

_VW_OK = 0
_VW_ERR_STORAGE = 18
_VW_ERR_NO_MODEL = 21


class SlotDevice:
    """One device's model slots over in-memory storage, run by the firmware's C code.

    A new device is off: :meth:`boot` powers it on. Storage survives a reset (the next
    :meth:`boot`); everything else is rebuilt from it, as on the device.

    Args:
        public_key: The fleet's model-signing key; :meth:`begin` accepts only manifests
            it verifies.
        capabilities: What the device can run.
        slot_bytes: Capacity of each model slot (multiple of 4, 64..16 MiB).
        storage: Contents of a device's storage to start from (e.g. another device's
            :attr:`storage`, to replay a scenario); erased (0xFF) storage when omitted.
            It is the OTA region (:attr:`layout`) followed by :data:`DEVICE_RECORD_BYTES`
            for the device layer's records.

    Raises:
        EdgeError: ``arg`` for capabilities or sizes the firmware refuses; ``storage`` if
            the given storage does not have the layout's size.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        capabilities: DeviceCapabilities,
        *,
        slot_bytes: int = 64 * 1024,
        storage: bytes | None = None,
    ) -> None:
        self._core = _core()
        self._key = public_key
        self._work = _lib.buffer(capabilities.engine_work_bytes)
        self._config = _Config(
            0,
            slot_bytes,
            capabilities.sample_rate_hz,
            capabilities.max_window,
            ctypes.cast(self._work, _VP),
            capabilities.engine_work_bytes,
        )
        layout = _Layout()
        _lib.check(
            self._core.vw_ota_layout(ctypes.byref(self._config), ctypes.byref(layout)),
            f"laying out two slots of {slot_bytes} bytes",
        )
        self.layout = Layout(
            meta=(layout.meta[0], layout.meta[1]),
            bitmap=layout.bitmap,
            bitmap_bytes=layout.bitmap_bytes,
            slots=(layout.slot[0], layout.slot[1]),
            end=layout.end,
        )
        self._size = layout.end + DEVICE_RECORD_BYTES
        self._mem = _lib.buffer(self._size)
        if storage is None:
            ctypes.memset(self._mem, 0xFF, self._size)
        elif len(storage) == self._size:
            ctypes.memmove(self._mem, storage, self._size)
        else:
            raise EdgeError(
                "arg",
                f"{len(storage)} bytes of storage, the layout needs {self._size} "
                f"({layout.end} for the slots, {DEVICE_RECORD_BYTES} for the device records)",
            )
        self._base = ctypes.addressof(self._mem)
        self._writes = 0
        self._cut_at: int | None = None
        self._torn: int | None = None
        self._powered = False
        self._port = _Port(
            None,
            None,
            _READ(self._read),
            _WRITE(self._write),
            _MAP(self._map),
            _VERIFY(self._verify),
            None,
            None,
        )
        self._ota = _lib.buffer(self._core.vwpy_ota_sizeof(0))
        self.limits = DeviceLimits(
            sample_rate_hz=capabilities.sample_rate_hz,
            max_window=capabilities.max_window,
            flash_bytes=slot_bytes,
            ram_bytes=capabilities.engine_work_bytes,
        )
        """What the device can run, for its status (``rate-…``, ``window-…``, ``flash-…``,
        ``ram-…`` capabilities)."""

    # ---- the port: storage with power cuts, Ed25519 ----

    def _in_range(self, addr: int, length: int) -> bool:
        return self._powered and addr + length <= self._size

    def _read(self, _ctx: int | None, addr: int, buf: int | None, length: int) -> int:
        if not self._in_range(addr, length) or buf is None:
            return _VW_ERR_STORAGE
        ctypes.memmove(buf, self._base + addr, length)
        return _VW_OK

    def _write(self, _ctx: int | None, addr: int, data: int | None, length: int) -> int:
        if not self._in_range(addr, length) or data is None:
            return _VW_ERR_STORAGE
        self._writes += 1
        if self._writes != self._cut_at:
            ctypes.memmove(self._base + addr, data, length)
            return _VW_OK
        self._powered = False
        self._cut_at = None
        if self._torn is None:  # the write completes, then the power goes
            ctypes.memmove(self._base + addr, data, length)
            return _VW_OK
        ctypes.memmove(self._base + addr, data, min(self._torn, length))
        return _VW_ERR_STORAGE

    def _map(self, _ctx: int | None, addr: int, length: int) -> int | None:
        return self._base + addr if self._in_range(addr, length) else None

    def _verify(self, _ctx: int | None, msg: int | None, length: int, sig: int | None) -> int:
        if msg is None or sig is None:
            return 0
        try:
            self._key.verify(ctypes.string_at(sig, SIGNATURE_BYTES), ctypes.string_at(msg, length))
        except InvalidSignature:
            return 0
        return 1

    def handles(self) -> SlotHandles:
        """What the device layer (:mod:`vibewatch.edge.device`) binds to: the C OTA state,
        the engine memory it shares, and this device's storage and signature callbacks."""
        return SlotHandles(
            ota=self._ota,
            engine_work=self._work,
            record_addr=self.layout.end,
            max_window=self._config.max_window,
            read=self._read,
            write=self._write,
            map=self._map,
            verify=self._verify,
        )

    # ---- power ----

    @property
    def powered(self) -> bool:
        """True from :meth:`boot` until an injected power cut."""
        return self._powered

    @property
    def writes(self) -> int:
        """Storage writes since the device was created (attempted ones included)."""
        return self._writes

    @property
    def storage(self) -> memoryview:
        """The persistent storage, writable (to damage it on purpose)."""
        return memoryview(self._mem).cast("B")

    def inject_reset(self, after_writes: int, torn_bytes: int | None = None) -> None:
        """Cut the power at the ``after_writes``-th storage write from now (1 = the next).

        Without ``torn_bytes`` that write completes and the power goes right after it;
        with ``torn_bytes`` only its first ``torn_bytes`` bytes reach storage and the write
        fails. Either way nothing more is written or read until :meth:`boot`.
        """
        if after_writes < 1 or (torn_bytes is not None and torn_bytes < 0):
            raise EdgeError("arg", f"reset after write {after_writes}, torn at {torn_bytes}")
        self._cut_at = self._writes + after_writes
        self._torn = torn_bytes

    def boot(self) -> OtaState:
        """Power on: RAM is fresh, the firmware reads storage and picks the slot.

        A pending :meth:`inject_reset` stays armed (so a reset can hit the boot's own write).

        Returns:
            The state after boot (``no_model`` when nothing is bootable).

        Raises:
            EdgeError: ``storage`` if the power is cut during the boot.
        """
        self._powered = True
        ctypes.memset(self._ota, 0, ctypes.sizeof(self._ota))
        status = self._core.vw_ota_init(
            self._ota, ctypes.byref(self._port), ctypes.byref(self._config)
        )
        if status != _VW_ERR_NO_MODEL:
            self._check(status, "booting")
        return self.state

    def _check(self, status: int, what: str) -> None:
        if status != _VW_OK and not self._powered:
            what = f"{what} (power cut at storage write {self._writes})"
        _lib.check(status, what)

    # ---- OTA ----

    def provision(self, blob: bytes) -> None:
        """Install the factory model into slot A of a device without a model.

        Raises:
            EdgeError: ``state`` if a model is already bootable, ``too_large``, a parse
                error (``crc``, ``truncated``...), ``spec`` or ``golden``.
        """
        self._check(
            self._core.vw_ota_provision(self._ota, blob, len(blob)),
            f"provisioning a {len(blob)}-byte blob",
        )

    def begin(self, manifest: Manifest, signature: bytes) -> None:
        """Start downloading ``manifest``'s blob, or resume it if it is the same manifest.

        Raises:
            EdgeError: ``signature``, ``downgrade``, ``too_large``, ``state`` (no model,
                or a trial not yet confirmed), ``arg`` (a signature not of 64 bytes).
        """
        if len(signature) != SIGNATURE_BYTES:
            raise EdgeError("arg", f"signature of {len(signature)} bytes, expected 64")
        self._check(
            self._core.vw_ota_begin(self._ota, ctypes.byref(_to_c(manifest)), signature),
            f"starting {manifest.model_id} v{manifest.model_version}",
        )

    def chunk(self, offset: int, data: bytes) -> None:
        """Store the chunk at ``offset`` (any order; a repeated chunk is ignored).

        Raises:
            EdgeError: ``range`` (offset not on a chunk boundary, wrong length), ``state``.
        """
        if not 0 <= offset <= 0xFFFFFFFF:
            raise EdgeError("range", f"chunk offset {offset}")
        self._check(
            self._core.vw_ota_chunk(self._ota, offset, data, len(data)),
            f"storing {len(data)} bytes at {offset}",
        )

    def next_missing(self) -> tuple[int, int] | None:
        """Offset and length of the first chunk not yet stored; ``None`` when complete.

        Raises:
            EdgeError: ``state`` when not downloading.
        """
        offset, length = _U32(), _U32()
        self._check(
            self._core.vw_ota_next_missing(self._ota, ctypes.byref(offset), ctypes.byref(length)),
            "looking for the next missing chunk",
        )
        return (offset.value, length.value) if length.value else None

    def finish(self) -> None:
        """Verify the downloaded blob and activate it on trial.

        Raises:
            EdgeError: ``incomplete`` (chunks missing; nothing changes), or a refusal that
                ends the download and keeps the current model: ``hash``, a parse error
                (``crc``, ``truncated``, ``magic``...), ``format`` (id or version differ
                from the manifest), ``spec``, ``golden``.
        """
        self._check(self._core.vw_ota_finish(self._ota), "verifying the downloaded blob")

    def confirm(self) -> None:
        """Keep the model on trial; without this, the next boot falls back.

        Raises:
            EdgeError: ``state`` when no model is on trial.
        """
        self._check(self._core.vw_ota_confirm(self._ota), "confirming the model on trial")

    def install(self, manifest: Manifest, signature: bytes, blob: bytes) -> None:
        """:meth:`begin`, every missing chunk in order, :meth:`finish` (not confirmed)."""
        self.begin(manifest, signature)
        while (want := self.next_missing()) is not None:
            offset, length = want
            self.chunk(offset, blob[offset : offset + length])
        self.finish()

    # ---- reports ----

    def _slot_blob(self, index: int, size: int) -> bytes:
        start = self.layout.slots[index]
        return bytes(self.storage[start : start + size])

    @property
    def active_blob(self) -> bytes | None:
        """The active model's blob as stored, or ``None`` without a model."""
        info = self._info()
        if info.state == 0:
            return None
        return self._slot_blob(info.active_slot, info.slot[info.active_slot].size)

    def _info(self) -> _Info:
        info = _Info()
        _lib.check(self._core.vw_ota_info(self._ota, ctypes.byref(info)), "reading the state")
        return info

    @property
    def state(self) -> OtaState:
        """A snapshot of the OTA state (what the ``status`` and ``ota/req`` messages say)."""
        info = self._info()
        name = _STATES[info.state]
        has_model = name != "no_model"
        active = info.active_slot if has_model else None
        slots = {}
        for i, slot_name in enumerate(_SLOT_NAMES):
            s = info.slot[i]
            slot_state: SlotStateName = "active" if i == active else _SLOT_STATES[s.state]
            slots[slot_name] = SlotInfo(slot_state, s.version, s.size, bytes(s.sha256).hex())
        model_id = None
        if active is not None:
            blob = self._slot_blob(active, info.slot[active].size)
            model_id = decode_header(blob).model_id
        downloading = name == "downloading"
        failed = _EVENTS[info.last_event] == "failed"
        return OtaState(
            state=name,
            active_slot=_SLOT_NAMES[active] if active is not None else None,
            model_id=model_id,
            model_version=info.slot[active].version if active is not None else None,
            model_sha256=slots[_SLOT_NAMES[active]].sha256 if active is not None else None,
            slots=slots,
            received_chunks=info.received_chunks,
            total_chunks=info.total_chunks,
            download_version=info.download.model_version if downloading else None,
            last_event=_EVENTS[info.last_event],
            last_error=_lib.status_name(info.last_status) if failed else None,
        )
