"""Edge benchmark: the firmware engine against TFLite Micro, in bytes and instructions.

For two int8 autoencoders made by the real TF Lite converter from Keras models:

* **small-ae** 36-32-8-32-36, the size of the factory model (32 log-spaced bands + 4
  statistics of a 1,024-sample window at 48 kHz);
* **mlperf-ad** 640-128-128-128-128-8-128-128-128-128-640, the MLPerf Tiny
  anomaly-detection architecture (about 270 k parameters),

it converts the ``.tflite`` to ``.vwm`` (``vibewatch.edge.convert``) and measures:

* ``bitexact``: every output byte of the C engine equals TFLite Micro's (reference
  kernels) on random int8 inputs and on quantised representative rows;
* ``ram_bytes``: all working memory the engine needs for one inference, against
  ``tflm_arena_bytes``, the arena TFLite Micro's recording allocator reports;
* ``model_bytes_vwm`` and ``model_bytes_tflite``;
* ``m4_text_bytes``: code of engine + DSP (+ blob parser) built for Cortex-M4 with
  ``-Os``, from ``arm-none-eabi-size``;
* ``m4_instructions_per_inference``: instructions of one ``vw_engine_infer`` on the
  emulated Cortex-M4 (QEMU ``-icount``, exact and repeatable), against ``macs``: the whole
  per-window inference, from the float features (quantised with the folded normalisation)
  to the anomaly score; ``m4_instructions_int8_run`` is ``vw_engine_run`` alone, from an
  int8 input as TFLite Micro's ``Invoke`` starts.

and for the whole firmware on the same Cortex-M4 image, running the device layer over the
factory model (``vibewatch.edge.m4.factory_replay``: 22 recorded windows, two commands):

* ``m4_text_bytes_core``: code of the whole firmware core (device layer, JSON reader and
  writer with their big integers, anomaly, chunk, OTA, SHA-256, CRC-32, engine, kernel,
  DSP, model parser, status names), the text column of ``arm-none-eabi-size`` over the
  objects the image's Makefile names as the core;
* ``device_ram_bytes``: RAM one device needs besides the model (read in place from
  storage) and the window of samples, as the image computes it: ``vw_device_t``,
  ``vw_ota_t``, the device's working memory for the factory model with the default
  settings, the engine memory (the core has no static RAM: checked);
* ``m4_instructions_per_window``: one ``vw_device_window`` of the factory model's spec
  (features, inference, anomaly state, the reading added to the batch) that publishes
  nothing: the median over the replay's such windows.

Bars (exit status 1 when one is missed): bit-exact for both; ``ram_bytes <= 0.3 *
tflm_arena_bytes``; ``model_bytes_vwm <= 0.6 * model_bytes_tflite`` for small-ae;
``m4_text_bytes <= 12288``; ``m4_instructions_per_inference <= 1.5 * macs`` for mlperf-ad;
``m4_text_bytes_core <= 20480``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vibewatch.edge import m4, tflm
from vibewatch.edge.convert import convert
from vibewatch.edge.engine import Model
from vibewatch.edge.spec import FeatureSpec
from vibewatch.edge.tf_export import dense_autoencoder, to_int8_tflite

MLPERF_DIMS = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)
MODELS: dict[str, tuple[tuple[int, ...], FeatureSpec]] = {
    "small-ae": ((36, 32, 8, 32, 36), FeatureSpec.log_bands(48_000, 1024, 31, 50.0, 20_000.0)),
    # 635 single-bin bands + 5 statistics = 640 features
    "mlperf-ad": (MLPERF_DIMS, FeatureSpec(16_000, 2048, tuple(range(1, 637)))),
}
RAM_SHARE = 0.3
VWM_SHARE = 0.6
TEXT_BYTES = 12288
INSTRUCTIONS_PER_MAC = 1.5
CORE_TEXT_BYTES = 20480


@dataclass
class Result:
    """One model's figures (the keys of ``--json``)."""

    name: str
    bitexact: bool
    ram_bytes: int
    tflm_arena_bytes: int
    model_bytes_vwm: int
    model_bytes_tflite: int
    m4_text_bytes: int
    m4_instructions_per_inference: int
    m4_instructions_int8_run: int
    macs: int


#: The device figures that are top-level keys of ``--json``; the rest is in the table.
JSON_DEVICE_KEYS = ("m4_text_bytes_core", "device_ram_bytes", "m4_instructions_per_window")


@dataclass
class DeviceFigures:
    """The whole firmware on the Cortex-M4 (:data:`JSON_DEVICE_KEYS` go to ``--json``)."""

    m4_text_bytes_core: int
    device_ram_bytes: int
    m4_instructions_per_window: int
    core_static_ram_bytes: int
    device_struct_bytes: int
    ota_struct_bytes: int
    device_work_bytes: int
    engine_work_bytes: int
    m4_instructions_window_max: int
    published: int


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure_host(name: str, inputs: int, seed: int) -> tuple[Result, bytes]:
    dims, spec = MODELS[name]
    rng = np.random.default_rng(seed)
    progress(f"{name}: Keras model and int8 .tflite")
    representative = rng.normal(size=(500, dims[0])).astype(np.float32)
    tflite = to_int8_tflite(dense_autoencoder(dims, seed=seed), representative)

    def blob(golden: np.ndarray) -> bytes:
        return convert(
            tflite,
            spec,
            model_id=name,
            version=1,
            mean=np.zeros(dims[0]),
            std=np.ones(dims[0]),
            threshold=1.0,
            golden_inputs=golden,
        )

    quantised = Model(blob(np.zeros((0, dims[0]), np.int8))).quantize(representative)
    vwm = blob(quantised[:8])
    engine = Model(vwm)
    progress(f"{name}: {inputs} inputs through the C engine and TFLite Micro")
    batch = np.concatenate(
        [rng.integers(-128, 128, (inputs, dims[0])).astype(np.int8), quantised[:inputs]]
    )
    ours, _ = engine.run(batch)
    bitexact = bool(np.array_equal(ours, tflm.run(tflite, batch)))
    return (
        Result(
            name=name,
            bitexact=bitexact,
            ram_bytes=engine.ram_bytes,
            tflm_arena_bytes=tflm.arena_bytes(tflite),
            model_bytes_vwm=len(vwm),
            model_bytes_tflite=len(tflite),
            m4_text_bytes=0,
            m4_instructions_per_inference=0,
            m4_instructions_int8_run=0,
            macs=engine.macs,
        ),
        vwm,
    )


def measure(inputs: int, seed: int) -> tuple[list[Result], DeviceFigures]:
    results, blobs = [], {}
    for name in MODELS:
        result, blobs[name] = measure_host(name, inputs, seed)
        results.append(result)
    progress("Cortex-M4 image: build and run in QEMU (the models, then the factory device)")
    with tempfile.TemporaryDirectory(prefix="vw-edge-bench-") as tmp:
        image = m4.build_image(Path(tmp), blobs, replay=m4.factory_replay(seed=seed))
        run = m4.run_image(image, timeout=600)
        text = m4.text_bytes(m4.engine_dsp_objects(Path(tmp)))
        core = m4.core_objects(Path(tmp))
        core_text, core_static = m4.text_bytes(core), m4.static_ram_bytes(core)
    for result in results:
        check = run.models.get(result.name)
        if check is None or not check.passed:
            status = check.status if check else "missing"
            raise SystemExit(f"{result.name}: the Cortex-M4 image failed ({status})")
        result.m4_text_bytes = text
        result.m4_instructions_per_inference = check.infer_instructions
        result.m4_instructions_int8_run = check.instructions
    replay = run.replay
    if replay is None or not replay.passed:
        where = f"step {replay.step}, {replay.status}" if replay else "missing"
        raise SystemExit(f"the factory device failed on the Cortex-M4 ({where})")
    device = DeviceFigures(
        m4_text_bytes_core=core_text,
        device_ram_bytes=replay.ram_bytes + core_static,
        m4_instructions_per_window=run.instructions_per_window,
        core_static_ram_bytes=core_static,
        device_struct_bytes=replay.device_bytes,
        ota_struct_bytes=replay.ota_bytes,
        device_work_bytes=replay.work_bytes,
        engine_work_bytes=replay.engine_bytes,
        m4_instructions_window_max=max(w.instructions for w in run.windows),
        published=replay.published,
    )
    return results, device


def misses(results: list[Result], device: DeviceFigures) -> list[str]:
    out = []
    if device.m4_text_bytes_core > CORE_TEXT_BYTES:
        out.append(f"firmware core code {device.m4_text_bytes_core} > {CORE_TEXT_BYTES} bytes")
    for r in results:
        if not r.bitexact:
            out.append(f"{r.name}: outputs differ from TFLite Micro")
        if r.ram_bytes > RAM_SHARE * r.tflm_arena_bytes:
            out.append(f"{r.name}: ram {r.ram_bytes} > {RAM_SHARE} x arena {r.tflm_arena_bytes}")
        if r.m4_text_bytes > TEXT_BYTES:
            out.append(f"{r.name}: engine + DSP code {r.m4_text_bytes} > {TEXT_BYTES} bytes")
    small = next(r for r in results if r.name == "small-ae")
    if small.model_bytes_vwm > VWM_SHARE * small.model_bytes_tflite:
        out.append(f"small-ae: .vwm {small.model_bytes_vwm} > {VWM_SHARE} x .tflite")
    mlperf = next(r for r in results if r.name == "mlperf-ad")
    if mlperf.m4_instructions_per_inference > INSTRUCTIONS_PER_MAC * mlperf.macs:
        out.append(
            f"mlperf-ad: {mlperf.m4_instructions_per_inference} instructions > "
            f"{INSTRUCTIONS_PER_MAC} x {mlperf.macs} MACs"
        )
    return out


def table(results: list[Result], device: DeviceFigures) -> str:
    rows = [
        ("bit-exact with TFLite Micro", lambda r: "yes" if r.bitexact else "NO"),
        ("engine working memory, bytes", lambda r: f"{r.ram_bytes:,}"),
        ("TFLite Micro arena, bytes", lambda r: f"{r.tflm_arena_bytes:,}"),
        ("  ratio (bar <= 0.3)", lambda r: f"{r.ram_bytes / r.tflm_arena_bytes:.3f}"),
        (".vwm bytes", lambda r: f"{r.model_bytes_vwm:,}"),
        (".tflite bytes", lambda r: f"{r.model_bytes_tflite:,}"),
        (
            "  ratio (bar <= 0.6, small-ae)",
            lambda r: f"{r.model_bytes_vwm / r.model_bytes_tflite:.3f}",
        ),
        ("Cortex-M4 engine + DSP code, bytes", lambda r: f"{r.m4_text_bytes:,}"),
        ("Cortex-M4 instructions / inference", lambda r: f"{r.m4_instructions_per_inference:,}"),
        ("  of which from an int8 input", lambda r: f"{r.m4_instructions_int8_run:,}"),
        ("MACs / inference", lambda r: f"{r.macs:,}"),
        (
            "  instructions / MAC (bar <= 1.5, mlperf-ad)",
            lambda r: f"{r.m4_instructions_per_inference / r.macs:.3f}",
        ),
    ]
    d = device
    device_rows = [
        ("Cortex-M4 firmware core code, bytes (bar <= 20480)", f"{d.m4_text_bytes_core:,}"),
        ("RAM of one device (factory model), bytes", f"{d.device_ram_bytes:,}"),
        ("  vw_device_t", f"{d.device_struct_bytes:,}"),
        ("  vw_ota_t", f"{d.ota_struct_bytes:,}"),
        ("  working memory (DSP, batch, payload)", f"{d.device_work_bytes:,}"),
        ("  engine memory", f"{d.engine_work_bytes:,}"),
        ("  static RAM of the core", f"{d.core_static_ram_bytes:,}"),
        ("Cortex-M4 instructions / window", f"{d.m4_instructions_per_window:,}"),
        ("  most for one window (writing messages)", f"{d.m4_instructions_window_max:,}"),
    ]
    width = max(len(label) for label, _ in [*rows, *device_rows])
    lines = [f"{'':<{width}}  " + "  ".join(f"{r.name:>12}" for r in results)]
    for label, cell in rows:
        lines.append(f"{label:<{width}}  " + "  ".join(f"{cell(r):>12}" for r in results))
    lines.append("factory device (whole firmware)")
    lines += [f"{label:<{width}}  {value:>12}" for label, value in device_rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--inputs", type=int, default=300, help="random int8 inputs per model (default 300)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of models and inputs")
    args = parser.parse_args(argv)
    results, device = measure(args.inputs, args.seed)
    missed = misses(results, device)
    if args.json:
        figures = {key: getattr(device, key) for key in JSON_DEVICE_KEYS}
        print(json.dumps({"models": [asdict(r) for r in results], **figures, "missed": missed}))
    else:
        print(table(results, device))
        for line in missed:
            print(f"MISSED: {line}")
        print("all bars met" if not missed else f"{len(missed)} bar(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
