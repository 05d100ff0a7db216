"""The factory model's training data: healthy machines from the vibration generator.

Devices ship with a model trained on :mod:`vibewatch.signals`: machines of the default kind
(each segment a machine of its own, within :data:`~vibewatch.signals.MACHINE_SPREAD` of the
default: :func:`~vibewatch.signals.varied_machine`, as the devices' machines differ) in
segments of :data:`SEGMENT_WINDOWS` consecutive windows, each at a random shaft speed
within :data:`SPEED_RANGE_HZ` and a random load within :data:`LOAD_RANGE`, some with the
speed ramping across the segment; segments in random order, so every part of the data,
held-out part included, covers the whole operating range. The faulty sets (for evaluation
and the card) are each fault kind at :data:`FAULT_SEVERITY` on the same range of machines,
speeds and loads.

Every random choice derives from one seed: the same seed gives the same rows, and (in a
fresh process, with the same library versions) the same package bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from vibewatch.edge import FeatureSpec, features_batch
from vibewatch.signals import FAULT_KINDS, MACHINE_SPREAD, Fault, Profile, generate, varied_machine
from vibewatch.train.job import TrainingData

SAMPLE_RATE_HZ = 48_000
SPEED_RANGE_HZ = (25.0, 35.0)
LOAD_RANGE = (0.5, 1.0)
SEGMENT_WINDOWS = 50
FAULT_SEVERITY = 0.5
#: The factory model's version; the registry numbers retrained models above it.
FACTORY_VERSION = 1


def _segment(
    spec: FeatureSpec,
    rng: np.random.Generator,
    faults: tuple[Fault, ...] = (),
) -> npt.NDArray[np.float32]:
    machine = varied_machine(random.Random(int(rng.integers(2**31))))
    low, high = SPEED_RANGE_HZ
    speed: Profile = float(rng.uniform(low, high))
    if rng.random() < 0.25:  # a run-up or run-down across the segment
        speed = (float(rng.uniform(low, high)), float(rng.uniform(low, high)))
    samples = generate(
        machine,
        duration_s=SEGMENT_WINDOWS * spec.window / spec.sample_rate_hz,
        sample_rate_hz=spec.sample_rate_hz,
        faults=faults,
        speed_hz=speed,
        load=float(rng.uniform(*LOAD_RANGE)),
        seed=int(rng.integers(2**31)),
    )
    return features_batch(samples.reshape(SEGMENT_WINDOWS, spec.window), spec)


def generator_data(
    *,
    seed: int = 0,
    windows: int = 20_000,
    faulty_windows: int = 1_000,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingData:
    """Healthy rows of machines of the default kind and faulty rows of every fault kind.

    Args:
        seed: Seed of every random choice.
        windows: Healthy windows (rounded up to whole segments).
        faulty_windows: Windows per fault kind (rounded up to whole segments).
        progress: Called with ``(segments done, segments)``.
    """
    spec = FeatureSpec.default(SAMPLE_RATE_HZ)
    rng = np.random.default_rng(seed)
    n_healthy = -(-windows // SEGMENT_WINDOWS)
    n_faulty = -(-faulty_windows // SEGMENT_WINDOWS)
    total = n_healthy + n_faulty * len(FAULT_KINDS)
    report = progress or (lambda done, total: None)
    healthy = []
    for i in range(n_healthy):
        healthy.append(_segment(spec, rng))
        report(i + 1, total)
    faulty = {}
    for k, kind in enumerate(FAULT_KINDS):
        faults = (Fault(kind, FAULT_SEVERITY),)
        parts = []
        for j in range(n_faulty):
            parts.append(_segment(spec, rng, faults))
            report(n_healthy + k * n_faulty + j + 1, total)
        faulty[f"{kind} {FAULT_SEVERITY:g}"] = np.concatenate(parts)
    source = {
        "source": "generator",
        "seed": seed,
        "machine": f"vibewatch.signals.varied_machine(spread={MACHINE_SPREAD:g})",
        "speed_hz": list(SPEED_RANGE_HZ),
        "load": list(LOAD_RANGE),
        "segment_windows": SEGMENT_WINDOWS,
    }
    return TrainingData(np.concatenate(healthy), spec, source, faulty)
