"""The firmware core built for Cortex-M4 and run in QEMU (mps2-an386) with semihosting."""

from __future__ import annotations

import ctypes
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vibewatch.edge import DeviceCapabilities, SlotDevice, _lib, m4
from vibewatch.edge.device import Device
from vibewatch.edge.engine import Model
from vibewatch.edge.vwm import decode_header
from vibewatch.errors import EdgeError
from vibewatch.protocol import CommandReply, Kind, Limits, decode_message
from vibewatch.testing.models import reseal


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    return m4.reference_models(seed=3)


@pytest.fixture(scope="module")
def replay() -> m4.DeviceReplay:
    return m4.factory_replay(seed=3)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("m4")


@pytest.fixture(scope="module")
def run(blobs: dict[str, bytes], replay: m4.DeviceReplay, build_dir: Path) -> m4.RunResult:
    return m4.run_image(m4.build_image(build_dir, blobs, seed=3, replay=replay))


def host_replay(replay: m4.DeviceReplay) -> list[tuple[str, bytes]]:
    """The replay through the host build: the same storage, boot, clocks and steps."""
    spec = decode_header(replay.blob).spec
    slots = SlotDevice(
        Ed25519PrivateKey.generate().public_key(),
        DeviceCapabilities(
            sample_rate_hz=spec.sample_rate_hz,
            max_window=replay.windows.shape[1],
            engine_work_bytes=replay.engine_work_bytes,
        ),
        slot_bytes=replay.slot_bytes,
    )
    slots.boot()
    slots.provision(replay.blob)
    slots.boot()  # a power cycle, as the image does
    clock = {"now": replay.boot_now_ms, "wall": replay.boot_wall_ms}
    sent: list[tuple[str, bytes]] = []

    def publish(suffix: str, payload: bytes) -> bool:
        sent.append((suffix, payload))
        return True

    device = Device(
        slots,
        firmware=replay.firmware,
        publish=publish,
        clock_ms=lambda: clock["now"],
        wall_ms=lambda: clock["wall"],
        capabilities=replay.capabilities,
        settings=replay.settings,
        max_features=replay.max_features,
    )
    for step in replay.steps:
        clock["now"], clock["wall"] = step.now_ms, step.wall_ms
        if step.kind is m4.StepKind.CONNECTED:
            device.connected()
        elif step.kind is m4.StepKind.WINDOW:
            device.window(replay.windows[step.index])
        elif step.kind is m4.StepKind.COMMAND:
            device.command(replay.commands[step.index])
        else:
            device.poll()
    return sent


def test_image_reproduces_the_golden_vectors_of_both_models(
    run: m4.RunResult, blobs: dict[str, bytes]
) -> None:
    assert run.lines[-1] == f"vw-m4: {run.passed} passed, 0 failed"
    assert (run.failed, run.exit_status) == (0, 0)
    assert list(run.models) == ["small", "mlperf-ad"]
    for name, blob in blobs.items():
        check, host = run.models[name], Model(blob)
        assert check.passed and check.status == "ok"
        assert check.golden == host.golden_count > 0
        assert (check.macs, check.ram_bytes) == (host.macs, host.ram_bytes)
        # SMLAD does two multiply-accumulates: fewer instructions than MACs / 2 is impossible
        assert check.instructions > check.macs // 2
        assert check.infer_instructions > check.macs // 2
    assert run.instructions == {n: c.instructions for n, c in run.models.items()}


@pytest.fixture(scope="module")
def host(replay: m4.DeviceReplay) -> list[tuple[str, bytes]]:
    return host_replay(replay)


def test_device_publishes_the_same_bytes_on_the_cortex_m4_as_on_the_host(
    run: m4.RunResult, host: list[tuple[str, bytes]]
) -> None:
    # feature values included: the DSP's sine and logarithm are its own float32 arithmetic,
    # not the C library's (newlib and glibc round some results differently)
    assert run.published == tuple(host)


def test_device_replay_publishes_every_kind_and_replies_on_the_cortex_m4(
    run: m4.RunResult, replay: m4.DeviceReplay, host: list[tuple[str, bytes]]
) -> None:
    assert run.replay is not None and run.replay.passed, run.replay
    kinds = {"status", "telemetry", "event", "features", "cmd/reply"}
    assert {suffix for suffix, _ in host} == kinds
    assert run.replay.published == len(host)
    window_steps = [s.index for s in replay.steps if s.kind is m4.StepKind.WINDOW]
    assert run.replay.windows == len(window_steps) == len(replay.windows)
    assert [w.index for w in run.windows] == window_steps
    # outside windows: the status, the set_threshold reply and the poll's last batch
    assert sum(w.published for w in run.windows) == len(host) - 3
    now = replay.steps[-1].wall_ms
    replies = [
        reply
        for suffix, payload in run.published
        if suffix == "cmd/reply"
        and isinstance(
            reply := decode_message(Kind.CMD_REPLY, "m4", payload, now_ms=now, limits=Limits()),
            CommandReply,
        )
    ]
    assert [(r.id, r.outcome.value) for r in replies] == [("m4-1", "done"), ("m4-2", "done")]
    assert replies[0].threshold == 2.5


def test_device_instructions_and_memory_on_the_cortex_m4(
    run: m4.RunResult, replay: m4.DeviceReplay
) -> None:
    assert run.replay is not None and run.replay.passed
    quiet = [w.instructions for w in run.windows if w.published == 0]
    # the same work whatever the samples: features, inference, state, one more reading
    assert len(quiet) >= 5 and max(quiet) - min(quiet) < 0.01 * min(quiet)
    assert run.instructions_per_window in quiet
    busy = [w.instructions for w in run.windows if w.published > 0]
    assert min(busy) > max(quiet)  # writing a message costs instructions
    r = run.replay
    assert r.ram_bytes == r.device_bytes + r.ota_bytes + r.work_bytes + r.engine_bytes
    assert r.engine_bytes == Model(replay.blob).ram_bytes
    # the DSP memory of a 1,024-sample window is in the working memory
    assert r.work_bytes > 4 * (1024 + 2 + 1024 // 4 + 1)


def test_published_payloads_read_back_byte_for_byte() -> None:
    lines = [
        "vw-m4: publish raw \\x00\\x5c\\x20ab\\xff",
        "vw-m4: publish cmd/reply {}",
        "vw-m4: window 3 instructions=1234 published=2",
        "vw-m4: 0 passed, 0 failed",
    ]
    result = m4.parse_output(lines, 0)
    assert result.published == (("raw", b"\x00\\ ab\xff"), ("cmd/reply", b"{}"))
    assert result.windows == (m4.WindowCount(3, 1234, 2),)
    assert result.replay is None


def test_instruction_count_is_exact_on_runs_of_nops(run: m4.RunResult) -> None:
    assert run.calibration == {n: n for n in m4.CALIBRATION_NOPS}


def test_kernel_reproduces_the_host_sums(run: m4.RunResult) -> None:
    assert run.kernel_ok


def test_host_sums_are_those_of_the_portable_kernel() -> None:
    kernel = _lib.lib().vw_kernel_rows
    kernel.restype = None
    kernel.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_uint32] * 2 + [ctypes.c_void_p]
    for w, x in m4.kernel_cases(seed=3):
        acc = np.zeros(4, dtype=np.int32)
        kernel(w.ctypes.data, x.ctypes.data, len(x) // 4, 1, acc.ctypes.data)
        assert acc.tolist() == m4.kernel_sums(w, x)


def _golden_output_offset(blob: bytes) -> int:
    """Offset of the first output byte of the first golden vector (layout: vw_model.h)."""
    (n_features,) = struct.unpack_from("<H", blob, 28)
    (golden_count,) = struct.unpack_from("<H", blob, 52)
    padded = (n_features + 3) & ~3
    return len(blob) - golden_count * (2 * padded + 4) + padded


def test_image_reports_a_wrong_golden_vector_and_a_corrupted_blob(
    blobs: dict[str, bytes], tmp_path: Path
) -> None:
    wrong_golden = bytearray(blobs["small"])
    wrong_golden[_golden_output_offset(blobs["small"])] ^= 0x01
    corrupted = bytearray(blobs["small"])
    corrupted[200] ^= 0x40  # inside the first layer's weights: the CRC no longer matches
    image = m4.build_image(
        tmp_path,
        {
            "wrong-golden": reseal(wrong_golden),
            "corrupted": bytes(corrupted),
            "small": blobs["small"],
        },
    )
    run = m4.run_image(image)
    assert (run.failed, run.exit_status != 0) == (2, True)
    assert run.lines[-1] == f"vw-m4: {run.passed} passed, 2 failed"
    assert run.models["wrong-golden"] == m4.ModelCheck("wrong-golden", False, "golden")
    assert run.models["corrupted"] == m4.ModelCheck("corrupted", False, "crc")
    assert run.models["small"].passed


def test_core_objects_are_the_firmware_core_as_the_image_compiles_it(
    run: m4.RunResult, build_dir: Path
) -> None:
    names = {o.name for o in m4.core_objects(build_dir)}
    sources = {p.stem + ".o" for p in (m4.FIRMWARE_DIR / "src").glob("*.c")}
    assert names == sources - {"vw_kernel.o"} | {"vw_kernel_m4.o"}
    assert {"vw_device.o", "vw_json_writer.o", "vw_bignum.o", "vw_ota.o"} <= names
    assert all(o.exists() for o in m4.core_objects(build_dir))
    # every buffer is the caller's: no static RAM in the core
    assert m4.static_ram_bytes(m4.core_objects(build_dir)) == 0
    assert m4.static_ram_bytes([build_dir / "vw_m4_device.o"]) > 0


def test_text_bytes_adds_up_the_text_column(run: m4.RunResult, build_dir: Path) -> None:
    objects = m4.engine_dsp_objects(build_dir)
    total = m4.text_bytes(objects)
    assert total == sum(m4.text_bytes([o]) for o in objects)
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "-S", str(build_dir / "vw_kernel_m4.o")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert m4.text_bytes([build_dir / "vw_kernel_m4.o"]) == int(symbols[1], 16)


def test_build_refuses_bad_model_names(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="at least one model"):
        m4.build_image(tmp_path, {})
    with pytest.raises(EdgeError, match="model name"):
        m4.build_image(tmp_path, {'bad"name': b""})


def test_output_without_a_tally_is_an_error() -> None:
    with pytest.raises(EdgeError, match="ended"):
        m4.parse_output(["vw-m4: fault"], 1)
    with pytest.raises(EdgeError, match="ended"):
        m4.parse_output(["vw-m4: 3 passed, 0 failed"], 1)
