"""The firmware core on an emulated Cortex-M4: golden vectors, a device, instructions, size.

The test image (``edge_firmware/m4``) is the firmware core built with ``arm-none-eabi-gcc``
for a Cortex-M4 with FPU, with the DSP-extension kernel (``src/arm/vw_kernel_m4.c``) in
place of the portable one, run in ``qemu-system-arm -M mps2-an386`` with semihosting. For
every model it parses the blob, binds an engine and reproduces all golden vectors exactly,
then counts the instructions of one ``vw_engine_run``; it also checks the kernel against
sums computed here and checks the instruction count itself on runs of NOPs.

With a :class:`DeviceReplay` it also runs the device layer: the replay's model is
provisioned into storage in RAM, ``vw_ota`` and ``vw_device`` boot on it, and the recorded
steps (windows of samples, downlink commands, polls, each with both clocks as the port
gives them) run in order. The image prints every payload the device published, the
instructions of every ``vw_device_window`` and the RAM one device needs
(``edge_firmware/m4/vw_m4_device.c``); :func:`factory_replay` is the factory model's.

Instruction counts are exact and deterministic: QEMU runs with ``-icount shift=7``, so
every instruction advances virtual time by 128 ns, and the image reads SysTick (25 MHz
processor clock, 40 ns a tick) around the measured call (``edge_firmware/m4/vw_m4.h``).

Typical use (the benchmark and the tests)::

    image = build_image(out_dir, {"small": blob_a}, replay=factory_replay())
    result = run_image(image)           # RunResult: models, published payloads, counts
    size = text_bytes(core_objects(out_dir))

``python -m vibewatch.edge.m4 [--out DIR]`` builds the image with :func:`reference_models`
and :func:`factory_replay`, runs it and prints its report and the code sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vibewatch.edge.device import DeviceSettings
from vibewatch.edge.vwm import decode_header, encode
from vibewatch.errors import EdgeError
from vibewatch.protocol import Command, CommandName
from vibewatch.signals import Fault, Machine, generate
from vibewatch.testing.models import random_model

#: The firmware tree (an editable install runs from the repository).
FIRMWARE_DIR = Path(__file__).resolve().parents[3] / "edge_firmware"
#: Makefile, startup code, linker script and main of the test image.
M4_DIR = FIRMWARE_DIR / "m4"
#: ELF file name of the test image inside the build directory.
IMAGE_NAME = "vw_m4_test.elf"
#: Virtual nanoseconds per instruction are ``2**ICOUNT_SHIFT`` (see the module docstring).
ICOUNT_SHIFT = 7
#: Objects whose code is the engine and the DSP: the ``m4_text_bytes`` of the benchmark.
ENGINE_DSP_OBJECTS = ("vw_engine.o", "vw_kernel_m4.o", "vw_dsp.o", "vw_model.o")
#: The factory model (48 kHz, 4,096-sample windows): the model of :func:`factory_replay`.
FACTORY_MODEL = FIRMWARE_DIR.parent / "models" / "factory" / "package" / "model.vwm"
#: NOP-run lengths on which the image checks its own instruction count.
CALIBRATION_NOPS = (1, 37, 1000)
CROSS = "arm-none-eabi-"
QEMU = "qemu-system-arm"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CHECK = re.compile(r"vw-m4: (\w+) ([A-Za-z0-9._-]+): (pass|fail)((?: [a-z_]+=\S+)*)")
_TALLY = re.compile(r"vw-m4: (\d+) passed, (\d+) failed")
_PUBLISH = re.compile(r"vw-m4: publish (\S+) (\S*)")
_WINDOW = re.compile(r"vw-m4: window (\d+) instructions=(\d+) published=(\d+)")
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")
_INT16_SPAN = 255  # inputs of the kernel: int8 values minus an int8 zero point


@dataclass(frozen=True)
class ModelCheck:
    """What the image reports for one model.

    Attributes:
        name: The name given to :func:`build_image`.
        passed: Parsed, bound and reproduced every golden vector exactly.
        status: ``"ok"`` or the C status name of the first failure (``crc``, ``golden``...).
        golden: Golden vectors reproduced (0 when failed).
        instructions: Instructions of one ``vw_engine_run`` (int8 input; reconstruction
            and score out), the call included (0 when failed).
        infer_instructions: Instructions of one ``vw_engine_infer``, the device's
            per-window call (float features quantised, all layers, score), the call
            included (0 when failed).
        macs: Multiply-accumulates per inference (0 when failed).
        ram_bytes: Working memory of the engine (``vw_engine_required_bytes``; 0 when failed).
    """

    name: str
    passed: bool
    status: str
    golden: int = 0
    instructions: int = 0
    infer_instructions: int = 0
    macs: int = 0
    ram_bytes: int = 0


class StepKind(enum.IntEnum):
    """What a step of a device replay does (``vw_m4_step_kind_t``)."""

    CONNECTED = 0  #: the connection is up: the status message
    WINDOW = 1  #: one window of samples
    COMMAND = 2  #: one ``cmd`` payload
    POLL = 3  #: time passes


@dataclass(frozen=True)
class ReplayStep:
    """One step of a device replay, with both clocks as the port gives them during it.

    Attributes:
        kind: What the step does.
        now_ms: The port's ``now_ms``: milliseconds since boot (32 bits).
        wall_ms: The port's ``time_ms``: the wall clock, milliseconds since the epoch.
        index: The window (:attr:`DeviceReplay.windows`) or the command
            (:attr:`DeviceReplay.commands`) of the step; 0 for the others.
    """

    kind: StepKind
    now_ms: int
    wall_ms: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class DeviceReplay:
    """A recorded sequence for one device: its model, configuration, windows and steps.

    The image provisions ``blob`` into slot A of erased storage (the OTA region of
    ``slot_bytes`` slots, then the device records), boots ``vw_ota`` and ``vw_device`` with the
    clocks at ``boot_now_ms`` and ``boot_wall_ms``, and runs ``steps``; a
    :class:`~vibewatch.edge.SlotDevice` and :class:`~vibewatch.edge.Device` with the same
    arguments run the same code on the host.

    Attributes:
        name: The replay's name in the report (``[A-Za-z0-9._-]{1,32}``).
        blob: The ``.vwm`` model.
        windows: Windows of samples in g, float32, one per row (the model's window length).
        commands: ``cmd`` payloads.
        steps: What happens, in order.
        settings: The device settings.
        firmware: The firmware version the status message names.
        capabilities: The capabilities the status message lists.
        max_features: The device configuration's largest feature vector.
        slot_bytes: Capacity of each model slot.
        engine_work_bytes: Engine memory shared by ``vw_ota`` and ``vw_device`` (the
            largest model the device accepts; the RAM figure counts what the model needs).
        boot_now_ms: ``now_ms`` while the device boots.
        boot_wall_ms: ``time_ms`` while the device boots.
    """

    name: str
    blob: bytes
    windows: npt.NDArray[np.float32]
    commands: tuple[bytes, ...]
    steps: tuple[ReplayStep, ...]
    settings: DeviceSettings
    firmware: str
    capabilities: tuple[str, ...]
    max_features: int
    slot_bytes: int = 64 * 1024
    engine_work_bytes: int = 8192
    boot_now_ms: int = 0
    boot_wall_ms: int = 0


@dataclass(frozen=True)
class ReplayCheck:
    """What the image reports for the device replay.

    Attributes:
        name: The replay's name.
        passed: Booted, and every step returned ``VW_OK``.
        status: ``"ok"`` or the C status name of the failure.
        step: The step that failed (``"boot"``, or its index); ``""`` when passed.
        windows: Windows the device scored.
        published: Payloads it published.
        ram_bytes: ``device_bytes + ota_bytes + work_bytes + engine_bytes``: what one device
            needs besides the model (read in place from storage) and the window.
        device_bytes: ``sizeof(vw_device_t)``.
        ota_bytes: ``sizeof(vw_ota_t)`` (the OTA bitmap and metadata records live in
            storage).
        work_bytes: ``vw_device_required_bytes`` for the replay's configuration with the
            default settings.
        engine_bytes: ``vw_engine_required_bytes`` of the model.
    """

    name: str
    passed: bool
    status: str
    step: str = ""
    windows: int = 0
    published: int = 0
    ram_bytes: int = 0
    device_bytes: int = 0
    ota_bytes: int = 0
    work_bytes: int = 0
    engine_bytes: int = 0


@dataclass(frozen=True)
class WindowCount:
    """One ``vw_device_window`` of the replay on the Cortex-M4.

    Attributes:
        index: The window (:attr:`DeviceReplay.windows`).
        instructions: Instructions of the call: features, inference, anomaly state,
            batching, the messages that fell due and the port's callbacks.
        published: Payloads the call published.
    """

    index: int
    instructions: int
    published: int


@dataclass(frozen=True)
class RunResult:
    """The report of one run of the test image.

    Attributes:
        lines: The image's console output, line by line.
        passed: Checks that passed (calibration runs, the kernel check, models, replay).
        failed: Checks that failed.
        exit_status: QEMU's exit status: 0 if and only if nothing failed.
        models: Model checks by name, in image order.
        calibration: Instructions counted for each NOP run, by its length.
        kernel_ok: Whether the kernel reproduced every host-computed sum.
        published: Every payload the device of the replay published, in order, as
            (topic suffix, bytes).
        windows: The replay's windows, in order.
        replay: The replay's check; None when the image had no replay.
    """

    lines: tuple[str, ...]
    passed: int
    failed: int
    exit_status: int
    models: dict[str, ModelCheck]
    calibration: dict[int, int]
    kernel_ok: bool
    published: tuple[tuple[str, bytes], ...] = ()
    windows: tuple[WindowCount, ...] = ()
    replay: ReplayCheck | None = None

    @property
    def instructions(self) -> dict[str, int]:
        """Instructions of one inference for every model that passed, by name."""
        return {name: m.instructions for name, m in self.models.items() if m.passed}

    @property
    def instructions_per_window(self) -> int:
        """Instructions of a window that publishes nothing (its reading joins the batch):
        the median over the replay's such windows; 0 without one."""
        quiet = [w.instructions for w in self.windows if w.published == 0]
        return int(statistics.median_low(quiet)) if quiet else 0


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EdgeError("build", f"{name} is not installed (scripts/setup installs it)")
    return path


def _c_array(ctype: str, name: str, values: Iterable[int]) -> str:
    items = [str(v) for v in values]
    rows = [",".join(items[i : i + 24]) for i in range(0, len(items), 24)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[] __attribute__((aligned(4))) = {{\n    {body}\n}};\n"


def kernel_cases(seed: int) -> list[tuple[npt.NDArray[np.int8], npt.NDArray[np.int16]]]:
    """Weights and interleaved inputs of the kernel checks: random, and the extremes.

    Group counts cover the one-group path (1-3 groups), the four-group loop, both
    together, and the largest layer (``VW_MODEL_MAX_DIM`` inputs); the last cases hold
    the extreme values (``-128`` weights against ``-255`` and ``+255`` inputs).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for groups in (1, 2, 3, 7, 8, 9, 15, 16, 17, 23, 32, 33, 160, 512):
        w = rng.integers(-128, 128, size=16 * groups, dtype=np.int8)
        x = rng.integers(-_INT16_SPAN, _INT16_SPAN + 1, size=4 * groups, dtype=np.int16)
        cases.append((w, x))
    for value in (-_INT16_SPAN, _INT16_SPAN):
        cases.append((np.full(16 * 512, -128, np.int8), np.full(4 * 512, value, np.int16)))
    return cases


def kernel_sums(w: npt.NDArray[np.int8], x: npt.NDArray[np.int16]) -> list[int]:
    """The four sums of one block of ``vw_kernel_rows`` (``vw_kernel.h``), in int64."""
    groups = len(x) // 4
    rows = w.astype(np.int64).reshape(groups, 4, 4)  # group, row, input k
    inputs = x.astype(np.int64).reshape(groups, 4)[:, [0, 2, 1, 3]]  # back to input order
    return [int(v) for v in np.einsum("grk,gk->r", rows, inputs)]


def _c_float(value: float) -> str:
    """A float32 as an exact C literal (hexadecimal)."""
    return float(np.float32(value)).hex() + "f"


def _c_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


#: Fields of :class:`DeviceSettings` that live in ``vw_device_settings_t.anomaly``.
_ANOMALY_FIELDS = ("k", "n", "m", "release_ratio")


def _c_settings(settings: DeviceSettings) -> str:
    """A ``vw_device_settings_t`` initializer with every field of ``settings``.

    Fields the C struct has and the Python one lacks are zero, as in the host binding's
    zeroed configuration; a Python field the C struct lacks does not compile.
    """
    items = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        path = f"anomaly.{f.name}" if f.name in _ANOMALY_FIELDS else f.name
        literal = _c_float(value) if isinstance(value, float) else f"{int(value)}u"
        items.append(f".{path} = {literal}")
    return "{" + ", ".join(items) + "}"


def _replay_source(replay: DeviceReplay) -> str:
    """The replay's data: the ``vw_m4_replay`` the image runs."""
    windows = np.ascontiguousarray(replay.windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise EdgeError("arg", f"replay windows of shape {windows.shape}: one window a row")
    parts = [_c_array("uint8_t", "replay_blob", replay.blob)]
    rows = [",".join(_c_float(v) for v in row) for row in windows.tolist()]
    parts.append("static const float replay_samples[] = {\n    " + ",\n    ".join(rows) + "\n};\n")
    commands = "NULL, 0u"
    if replay.commands:
        entries = []
        for i, payload in enumerate(replay.commands):
            parts.append(_c_array("uint8_t", f"replay_command_{i}", payload or b"\0"))
            entries.append(f"    {{replay_command_{i}, {len(payload)}u}},\n")
        table = "".join(entries)
        parts.append(f"static const vw_m4_bytes_t replay_commands[] = {{\n{table}}};\n")
        commands = f"replay_commands, {len(entries)}u"
    steps = "".join(
        f"    {{{int(step.kind)}u, {step.index}u, {step.now_ms}u, UINT64_C({step.wall_ms})}},\n"
        for step in replay.steps
    )
    parts.append("static const vw_m4_step_t replay_steps[] = {\n" + steps + "};\n")
    fields = [
        _c_string(replay.name),
        "replay_blob",
        f"{len(replay.blob)}u",
        f"{replay.slot_bytes}u",
        f"{decode_header(replay.blob).spec.sample_rate_hz}u",
        f"{windows.shape[1]}u",
        f"{replay.max_features}u",
        f"{replay.engine_work_bytes}u",
        _c_string(replay.firmware),
        _c_string(",".join(replay.capabilities)),
        _c_settings(replay.settings),
        f"{replay.boot_now_ms}u",
        f"UINT64_C({replay.boot_wall_ms})",
        "replay_samples",
        f"{windows.shape[1]}u",
        f"{windows.shape[0]}u",
        commands,
        f"replay_steps, {len(replay.steps)}u",
    ]
    parts.append(
        "static const vw_m4_replay_t replay = {\n    " + ",\n    ".join(fields) + ",\n};\n"
    )
    parts.append("const vw_m4_replay_t *const vw_m4_replay = &replay;\n")
    return "".join(parts)


def data_source(
    models: Mapping[str, bytes], seed: int = 0, replay: DeviceReplay | None = None
) -> str:
    """The C source of the image's data: the model blobs, the kernel checks, the replay."""
    parts = ['/* Generated by vibewatch.edge.m4; not a source file. */\n#include "vw_m4.h"\n']
    entries = []
    for i, (name, blob) in enumerate(models.items()):
        parts.append(_c_array("uint8_t", f"model_{i}", blob))
        entries.append(f'    {{"{name}", model_{i}, {len(blob)}u}},\n')
    parts.append("const vw_m4_model_t vw_m4_models[] = {\n" + "".join(entries) + "};\n")
    parts.append(f"const uint32_t vw_m4_model_count = {len(entries)}u;\n")
    entries = []
    for i, (w, x) in enumerate(kernel_cases(seed)):
        parts.append(_c_array("int8_t", f"kernel_w_{i}", w))
        parts.append(_c_array("int16_t", f"kernel_x_{i}", x))
        sums = ", ".join(f"(int32_t){s}" for s in kernel_sums(w, x))
        entries.append(f"    {{kernel_w_{i}, kernel_x_{i}, {len(x) // 4}u, {{{sums}}}}},\n")
    parts.append("const vw_m4_kernel_case_t vw_m4_kernel_cases[] = {\n" + "".join(entries) + "};\n")
    parts.append(f"const uint32_t vw_m4_kernel_case_count = {len(entries)}u;\n")
    if replay is None:
        parts.append("const vw_m4_replay_t *const vw_m4_replay = NULL;\n")
    else:
        parts.append(_replay_source(replay))
    return "".join(parts)


def build_image(
    out_dir: Path,
    models: Mapping[str, bytes],
    *,
    seed: int = 0,
    replay: DeviceReplay | None = None,
) -> Path:
    """Build the test image for ``models`` in ``out_dir`` (objects stay there).

    Args:
        out_dir: Build directory; created if missing, reused (``make``) if present.
        models: ``.vwm`` blobs by name (``[A-Za-z0-9._-]{1,32}``), at least one; each
            must carry golden vectors for its check to pass.
        seed: Seed of the random kernel checks.
        replay: A device replay to run after the model checks; none when omitted.

    Returns:
        Path of the ELF image.

    Raises:
        EdgeError: ``arg`` for no models or a bad name, ``build`` if the toolchain is
            missing or the build fails (the message holds the compiler's output).
    """
    if not models:
        raise EdgeError("arg", "the test image needs at least one model")
    for name in models:
        if not _NAME.fullmatch(name):
            raise EdgeError("arg", f"model name {name!r} is not [A-Za-z0-9._-]{{1,32}}")
    if replay is not None and not _NAME.fullmatch(replay.name):
        raise EdgeError("arg", f"replay name {replay.name!r} is not [A-Za-z0-9._-]{{1,32}}")
    _tool(CROSS + "gcc")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "vw_m4_data.c"
    source = data_source(models, seed, replay)
    if not data.exists() or data.read_text() != source:  # keep make's timestamps useful
        data.write_text(source)
    proc = subprocess.run(
        [
            _tool("make"),
            "-C",
            str(M4_DIR),
            f"-j{os.cpu_count() or 1}",
            f"BUILD={out_dir}",
            f"DATA_C={data}",
            f"ICOUNT_SHIFT={ICOUNT_SHIFT}",
            f"CROSS={CROSS}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise EdgeError("build", f"the Cortex-M4 image did not build:\n{proc.stderr[-4000:]}")
    return out_dir / IMAGE_NAME


def qemu_command(image: Path) -> list[str]:
    """The QEMU command line that runs ``image``: console on stdout, exact instruction time."""
    return [
        QEMU,
        "-M",
        "mps2-an386",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-chardev",
        "stdio,id=console",
        "-semihosting-config",
        "enable=on,target=native,chardev=console",
        "-icount",
        f"shift={ICOUNT_SHIFT}",
        "-kernel",
        str(image),
    ]


def _fields(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split())


def _unescape(text: str) -> bytes:
    """A payload as the image prints it: ``\\xHH`` for every byte but 0x21..0x7e and ``\\``."""
    return _ESCAPE.sub(lambda m: chr(int(m[1], 16)), text).encode("latin-1")


def _replay_check(name: str, ok: bool, fields: dict[str, str]) -> ReplayCheck:
    if not ok:
        return ReplayCheck(name, False, fields.get("status", "unknown"), fields.get("step", ""))
    sizes = ("windows", "published", "ram", "device", "ota", "work", "engine")
    windows, published, ram, device, ota, work, engine = (int(fields[k]) for k in sizes)
    return ReplayCheck(name, True, "ok", "", windows, published, ram, device, ota, work, engine)


def parse_output(lines: Sequence[str], exit_status: int) -> RunResult:
    """Read the image's report (format: ``edge_firmware/m4/vw_m4_main.c`` and
    ``vw_m4_device.c``).

    Raises:
        EdgeError: ``output`` if the tally is missing or disagrees with the exit status.
    """
    models: dict[str, ModelCheck] = {}
    calibration: dict[int, int] = {}
    kernel_ok = False
    tally = None
    published: list[tuple[str, bytes]] = []
    windows: list[WindowCount] = []
    replay = None
    for line in lines:
        if match := _TALLY.fullmatch(line):
            tally = int(match[1]), int(match[2])
        elif match := _PUBLISH.fullmatch(line):
            published.append((match[1], _unescape(match[2])))
        elif match := _WINDOW.fullmatch(line):
            windows.append(WindowCount(int(match[1]), int(match[2]), int(match[3])))
        elif match := _CHECK.fullmatch(line):
            kind, name, ok, fields = match[1], match[2], match[3] == "pass", _fields(match[4])
            if kind == "calibration":
                calibration[int(name.removeprefix("nops-"))] = int(fields["instructions"])
            elif kind == "kernel":
                kernel_ok = ok
            elif kind == "model" and ok:
                models[name] = ModelCheck(
                    name,
                    True,
                    "ok",
                    golden=int(fields["golden"]),
                    instructions=int(fields["instructions"]),
                    infer_instructions=int(fields["infer"]),
                    macs=int(fields["macs"]),
                    ram_bytes=int(fields["ram"]),
                )
            elif kind == "model":
                models[name] = ModelCheck(name, False, fields.get("status", "unknown"))
            elif kind == "replay":
                replay = _replay_check(name, ok, fields)
    if tally is None or (tally[1] == 0) != (exit_status == 0):
        shown = "\n".join(lines[-20:])
        raise EdgeError("output", f"the image ended (status {exit_status}) with:\n{shown}")
    return RunResult(
        tuple(lines),
        *tally,
        exit_status,
        models,
        calibration,
        kernel_ok,
        tuple(published),
        tuple(windows),
        replay,
    )


def run_image(image: Path, timeout: float = 120.0) -> RunResult:
    """Run the test image in QEMU and read its report.

    Args:
        image: From :func:`build_image`.
        timeout: Seconds before QEMU is killed.

    Raises:
        EdgeError: ``timeout`` if QEMU did not finish in time, ``output`` if the image
            crashed or printed no report.
    """
    try:
        proc = subprocess.run(
            qemu_command(Path(image)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EdgeError("build", f"{QEMU} is not installed (scripts/setup installs it)") from exc
    except subprocess.TimeoutExpired as exc:
        raise EdgeError("timeout", f"{image} ran longer than {timeout} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("vw-m4:")]
    if proc.stderr.strip():
        lines.append(f"vw-m4: qemu: {proc.stderr.strip()[-2000:]}")
    return parse_output(lines, proc.returncode)


def engine_dsp_objects(out_dir: Path) -> list[Path]:
    """The objects of :data:`ENGINE_DSP_OBJECTS` in a build directory."""
    return [Path(out_dir) / name for name in ENGINE_DSP_OBJECTS]


def core_objects(out_dir: Path) -> list[Path]:
    """The objects of the whole firmware core in a build directory: every ``src/*.c`` as
    the image compiles it (the DSP-extension kernel in place of the portable one), not
    the image's own files nor its data. The image's Makefile says which they are.

    Raises:
        EdgeError: ``build`` if ``make`` is missing or fails.
    """
    build = f"BUILD={Path(out_dir).resolve()}"
    proc = subprocess.run(
        [_tool("make"), "-s", "-C", str(M4_DIR), build, "core-objects"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise EdgeError("build", f"the core's objects are unknown: {proc.stderr.strip()}")
    return [Path(name) for name in proc.stdout.split()]


def _size_rows(objects: Iterable[Path]) -> list[tuple[int, int, int]]:
    """(text, data, bss) of each object, from ``arm-none-eabi-size``."""
    paths = [str(p) for p in objects]
    proc = subprocess.run(
        [_tool(CROSS + "size"), *paths], capture_output=True, text=True, check=False
    )
    rows = proc.stdout.splitlines()[1:]
    if proc.returncode != 0 or len(rows) != len(paths):
        raise EdgeError("build", f"{CROSS}size failed: {proc.stderr.strip()}")
    return [(int(row.split()[0]), int(row.split()[1]), int(row.split()[2])) for row in rows]


def text_bytes(objects: Iterable[Path]) -> int:
    """Code and read-only data of ``objects``: the sum of ``arm-none-eabi-size``'s text column.

    Raises:
        EdgeError: ``build`` if the tool is missing or cannot read an object.
    """
    return sum(text for text, _, _ in _size_rows(objects))


def static_ram_bytes(objects: Iterable[Path]) -> int:
    """Static RAM of ``objects``: the sum of the data and bss columns (0 for the core,
    whose memory is all the caller's).

    Raises:
        EdgeError: ``build`` if the tool is missing or cannot read an object.
    """
    return sum(data + bss for _, data, bss in _size_rows(objects))


#: Layer widths of the issue's two reference autoencoders.
SMALL_DIMS = (36, 32, 8, 32, 36)
MLPERF_AD_DIMS = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)


def reference_models(seed: int = 0) -> dict[str, bytes]:
    """Blobs of the small (36-32-8-32-36) and MLPerf-Tiny-AD-sized autoencoders, random.

    Realistic quantisation (:func:`vibewatch.testing.models.random_model`): outputs spread
    over int8, so the golden vectors check real arithmetic. Hidden layers are ReLU with
    per-channel scales, the last is linear and per-tensor: both requantisation paths run.
    """
    models = {"small": (SMALL_DIMS, seed, 4), "mlperf-ad": (MLPERF_AD_DIMS, seed + 1, 2)}
    return {
        name: encode(
            random_model(
                model_seed,
                dims,
                model_id=name,
                per_channel=[True] * (len(dims) - 2) + [False],
                golden=golden,
            )
        )
        for name, (dims, model_seed, golden) in models.items()
    }


#: 2025-12-01T00:00:00Z: the wall clock when a replay's device boots.
REPLAY_WALL_MS = 1_764_547_200_000
#: The settings of :func:`factory_replay`: small batches, frequent feature vectors and a
#: short calibration, so that a few dozen windows publish every kind of message.
REPLAY_SETTINGS = DeviceSettings(
    k=3,
    n=5,
    m=4,
    batch_windows=4,
    batch_ms=3000,
    features_every=5,
    calibrate_windows=3,
    calibrate_target=0.01,
)


def recorded_windows(
    blob: bytes, count: int, *faults: Fault, seed: int = 0
) -> npt.NDArray[np.float32]:
    """``count`` consecutive windows of the signal generator's machine, for ``blob``'s
    feature spec (sample rate and window length), with ``faults``; one window a row."""
    spec = decode_header(blob).spec
    signal = generate(
        Machine(),
        duration_s=count * spec.window / spec.sample_rate_hz,
        sample_rate_hz=spec.sample_rate_hz,
        faults=faults,
        seed=seed,
    )
    return signal.reshape(count, spec.window)


def factory_replay(blob: bytes | None = None, *, seed: int = 0) -> DeviceReplay:
    """The factory model's device replay (``blob``: :data:`FACTORY_MODEL` when omitted).

    The device boots at :data:`REPLAY_WALL_MS` with :data:`REPLAY_SETTINGS`, connects
    (``status``), scores 6 healthy windows, takes ``set_threshold`` 2.5, scores 6 windows
    with an outer-race fault (an anomaly starts at the third), takes ``calibrate`` (over
    the next 3 windows), scores 2 more faulty windows and 8 healthy ones (the anomaly
    ends), and 5 s later a poll sends the last, partial batch. Windows come a second
    apart by both clocks, commands a quarter of a second after the window before them.
    """
    blob = FACTORY_MODEL.read_bytes() if blob is None else blob
    header = decode_header(blob)
    fault = Fault("outer_race", 1.0)
    windows = np.concatenate(
        [
            recorded_windows(blob, 6, seed=seed),
            recorded_windows(blob, 8, fault, seed=seed + 1),
            recorded_windows(blob, 8, seed=seed + 2),
        ]
    )
    now, wall = 0, REPLAY_WALL_MS
    steps = [ReplayStep(StepKind.CONNECTED, now, wall)]
    commands: list[bytes] = []

    def run_windows(first: int, count: int) -> None:
        nonlocal now, wall
        for index in range(first, first + count):
            now, wall = now + 1000, wall + 1000
            steps.append(ReplayStep(StepKind.WINDOW, now, wall, index))

    def command(name: CommandName, threshold: float | None = None) -> None:
        nonlocal now, wall
        now, wall = now + 250, wall + 250
        sent = Command(
            device="m4", id=f"m4-{len(commands) + 1}", t=wall, cmd=name, threshold=threshold
        )
        steps.append(ReplayStep(StepKind.COMMAND, now, wall, len(commands)))
        commands.append(sent.encode())

    run_windows(0, 6)
    command(CommandName.SET_THRESHOLD, 2.5)
    run_windows(6, 6)
    command(CommandName.CALIBRATE)
    run_windows(12, 10)
    steps.append(ReplayStep(StepKind.POLL, now + 5000, wall + 5000))
    return DeviceReplay(
        name="factory",
        blob=blob,
        windows=windows,
        commands=tuple(commands),
        steps=tuple(steps),
        settings=REPLAY_SETTINGS,
        firmware="1.0.0",
        capabilities=("ota", "raw"),
        max_features=header.spec.n_features,
        boot_wall_ms=REPLAY_WALL_MS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Build and run the test image with the reference models and the factory replay;
    print its report."""
    parser = argparse.ArgumentParser(prog="python -m vibewatch.edge.m4", description=__doc__)
    parser.add_argument("--out", type=Path, help="build directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random models")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vw-m4-") as tmp:
        out = args.out or Path(tmp)
        image = build_image(
            out, reference_models(args.seed), seed=args.seed, replay=factory_replay()
        )
        result = run_image(image)
        print("\n".join(line for line in result.lines if not line.startswith("vw-m4: publish")))
        for name, check in result.models.items():
            if check.passed:
                per_mac = check.instructions / check.macs
                infer_per_mac = check.infer_instructions / check.macs
                print(
                    f"{name}: vw_engine_run {check.instructions} instructions "
                    f"({per_mac:.3f} per MAC), vw_engine_infer {check.infer_instructions} "
                    f"({infer_per_mac:.3f} per MAC)"
                )
        if result.replay is not None and result.replay.passed:
            r = result.replay
            print(
                f"device: {len(result.published)} payloads published, "
                f"{result.instructions_per_window} instructions per window (one that "
                f"publishes nothing), {r.ram_bytes} bytes of RAM (vw_device_t {r.device_bytes}, "
                f"vw_ota_t {r.ota_bytes}, working memory {r.work_bytes}, engine {r.engine_bytes})"
            )
        print(f"engine + DSP text: {text_bytes(engine_dsp_objects(out))} bytes")
        print(f"firmware core text: {text_bytes(core_objects(out))} bytes")
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
