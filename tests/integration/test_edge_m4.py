"""The firmware core built for Cortex-M4 and run in QEMU (mps2-an386) with semihosting."""

from __future__ import annotations

import ctypes
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vibewatch.edge import _lib, m4
from vibewatch.edge.engine import Model
from vibewatch.errors import EdgeError
from vibewatch.testing.models import reseal


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    return m4.reference_models(seed=3)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("m4")


@pytest.fixture(scope="module")
def run(blobs: dict[str, bytes], build_dir: Path) -> m4.RunResult:
    return m4.run_image(m4.build_image(build_dir, blobs, seed=3))


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
