"""The firmware core on an emulated Cortex-M4: golden vectors, instruction counts, code size.

The test image (``edge_firmware/m4``) is the firmware core built with ``arm-none-eabi-gcc``
for a Cortex-M4 with FPU, with the DSP-extension kernel (``src/arm/vw_kernel_m4.c``) in
place of the portable one, run in ``qemu-system-arm -M mps2-an386`` with semihosting. For
every model it parses the blob, binds an engine and reproduces all golden vectors exactly,
then counts the instructions of one ``vw_engine_run``; it also checks the kernel against
sums computed here and checks the instruction count itself on runs of NOPs.

Instruction counts are exact and deterministic: QEMU runs with ``-icount shift=7``, so
every instruction advances virtual time by 128 ns, and the image reads SysTick (25 MHz
processor clock, 40 ns a tick) around the measured call (``edge_firmware/m4/vw_m4.h``).

Typical use (the benchmark and the tests)::

    image = build_image(out_dir, {"small": blob_a, "mlperf-ad": blob_b})
    result = run_image(image)           # RunResult: passed, failed, models, instructions
    size = text_bytes(engine_dsp_objects(out_dir))

``python -m vibewatch.edge.m4 [--out DIR]`` builds the image with :func:`reference_models`,
runs it and prints its report and the engine + DSP code size.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vibewatch.edge.vwm import encode
from vibewatch.errors import EdgeError
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
#: NOP-run lengths on which the image checks its own instruction count.
CALIBRATION_NOPS = (1, 37, 1000)
CROSS = "arm-none-eabi-"
QEMU = "qemu-system-arm"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
_CHECK = re.compile(r"vw-m4: (\w+) ([A-Za-z0-9._-]+): (pass|fail)((?: [a-z_]+=\S+)*)")
_TALLY = re.compile(r"vw-m4: (\d+) passed, (\d+) failed")
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


@dataclass(frozen=True)
class RunResult:
    """The report of one run of the test image.

    Attributes:
        lines: The image's console output, line by line.
        passed: Checks that passed (calibration runs, the kernel check, models).
        failed: Checks that failed.
        exit_status: QEMU's exit status: 0 if and only if nothing failed.
        models: Model checks by name, in image order.
        calibration: Instructions counted for each NOP run, by its length.
        kernel_ok: Whether the kernel reproduced every host-computed sum.
    """

    lines: tuple[str, ...]
    passed: int
    failed: int
    exit_status: int
    models: dict[str, ModelCheck]
    calibration: dict[int, int]
    kernel_ok: bool

    @property
    def instructions(self) -> dict[str, int]:
        """Instructions of one inference for every model that passed, by name."""
        return {name: m.instructions for name, m in self.models.items() if m.passed}


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

    Group counts cover the one-group path (1-15 groups), the sixteen-group loop, both
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


def data_source(models: Mapping[str, bytes], seed: int = 0) -> str:
    """The C source of the image's data: the model blobs and the kernel checks."""
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
    return "".join(parts)


def build_image(out_dir: Path, models: Mapping[str, bytes], *, seed: int = 0) -> Path:
    """Build the test image for ``models`` in ``out_dir`` (objects stay there).

    Args:
        out_dir: Build directory; created if missing, reused (``make``) if present.
        models: ``.vwm`` blobs by name (``[A-Za-z0-9._-]{1,32}``), at least one; each
            must carry golden vectors for its check to pass.
        seed: Seed of the random kernel checks.

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
    _tool(CROSS + "gcc")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / "vw_m4_data.c"
    source = data_source(models, seed)
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


def parse_output(lines: Sequence[str], exit_status: int) -> RunResult:
    """Read the image's report (format: ``edge_firmware/m4/vw_m4_main.c``).

    Raises:
        EdgeError: ``output`` if the tally is missing or disagrees with the exit status.
    """
    models: dict[str, ModelCheck] = {}
    calibration: dict[int, int] = {}
    kernel_ok = False
    tally = None
    for line in lines:
        if match := _TALLY.fullmatch(line):
            tally = int(match[1]), int(match[2])
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
    if tally is None or (tally[1] == 0) != (exit_status == 0):
        shown = "\n".join(lines[-20:])
        raise EdgeError("output", f"the image ended (status {exit_status}) with:\n{shown}")
    return RunResult(tuple(lines), *tally, exit_status, models, calibration, kernel_ok)


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


def text_bytes(objects: Iterable[Path]) -> int:
    """Code and read-only data of ``objects``: the sum of ``arm-none-eabi-size``'s text column.

    Raises:
        EdgeError: ``build`` if the tool is missing or cannot read an object.
    """
    paths = [str(p) for p in objects]
    proc = subprocess.run(
        [_tool(CROSS + "size"), *paths], capture_output=True, text=True, check=False
    )
    rows = proc.stdout.splitlines()[1:]
    if proc.returncode != 0 or len(rows) != len(paths):
        raise EdgeError("build", f"{CROSS}size failed: {proc.stderr.strip()}")
    return sum(int(row.split()[0]) for row in rows)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Build and run the test image with the reference models; print its report."""
    parser = argparse.ArgumentParser(prog="python -m vibewatch.edge.m4", description=__doc__)
    parser.add_argument("--out", type=Path, help="build directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random models")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vw-m4-") as tmp:
        out = args.out or Path(tmp)
        result = run_image(build_image(out, reference_models(args.seed), seed=args.seed))
        print("\n".join(result.lines))
        for name, check in result.models.items():
            if check.passed:
                per_mac = check.instructions / check.macs
                infer_per_mac = check.infer_instructions / check.macs
                print(
                    f"{name}: vw_engine_run {check.instructions} instructions "
                    f"({per_mac:.3f} per MAC), vw_engine_infer {check.infer_instructions} "
                    f"({infer_per_mac:.3f} per MAC)"
                )
        print(f"engine + DSP text: {text_bytes(engine_dsp_objects(out))} bytes")
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
