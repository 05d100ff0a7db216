"""A fitted autoencoder to the int8 artefacts the devices run, calibrated on int8 scores.

1. The Keras model becomes a full-integer int8 ``.tflite``; the converter calibrates the
   activation ranges on a representative sample of the normalised training rows.
2. :func:`vibewatch.edge.convert` turns it into a ``.vwm`` blob with the normalisation
   folded into the input quantisation.
3. The held-out calibration rows are scored by the C engine (``vibewatch.edge.Model``), and
   the threshold is set again on those int8 scores, from their fitted upper tail
   (:mod:`vibewatch.train.tail`): the device decides with them, so its threshold must
   come from them, not from the float model.
4. The blob is written again with that threshold, its ceiling (:data:`CEILING_RATIO`
   times it: the highest threshold a device may set itself with the ``calibrate``
   command), and golden vectors: quantised inputs whose exact outputs and scores the
   engine records and the device must reproduce before it activates the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vibewatch.edge import FeatureSpec, Model, convert
from vibewatch.edge.tf_export import to_int8_tflite
from vibewatch.train.detectors import AutoencoderDetector
from vibewatch.train.tail import TailEstimate, tail_threshold

#: Rows of the training data the TF Lite converter calibrates activation ranges on.
REPRESENTATIVE_ROWS = 512
#: Golden vectors per blob: calibration rows, then inputs at the edges of the int8 range.
GOLDEN_ROWS = 16
#: A device's calibrated threshold may be at most this times the model's: a machine a
#: little noisier than the training data quiets its false alarms, but one that scores far
#: above them (a fault already present while it calibrates) cannot teach itself to ignore
#: it; that machine needs a model of its own.
CEILING_RATIO = 2.0


@dataclass(frozen=True)
class Int8Model:
    """The int8 artefacts of a fitted autoencoder.

    Attributes:
        tflite: Full-integer int8 ``.tflite``.
        vwm: The ``.vwm`` blob, with the int8 threshold and golden vectors.
        threshold: The score threshold calibrated on int8 scores.
        tail: How it was estimated from them.
        engine: The blob bound to the C engine (scores exactly as the device).
        golden_inputs: The quantised inputs of the golden vectors in the blob.
    """

    tflite: bytes
    vwm: bytes
    threshold: float
    tail: TailEstimate
    engine: Model
    golden_inputs: npt.NDArray[np.int8]


def export_int8(
    detector: AutoencoderDetector,
    healthy: npt.ArrayLike,
    spec: FeatureSpec,
    *,
    model_id: str,
    version: int,
) -> Int8Model:
    """Export a fitted autoencoder to int8 and calibrate its threshold on int8 scores.

    Args:
        detector: Fitted on ``healthy``.
        healthy: The rows the detector was fitted on (its :meth:`~Detector.split` gives the
            training and calibration parts again).
        spec: The feature spec of the rows.
        model_id: Id written into the blob.
        version: Version written into the blob.
    """
    train, calibration = detector.split(healthy)
    rng = np.random.default_rng(detector.random_state)
    pick = np.sort(rng.choice(len(train), min(REPRESENTATIVE_ROWS, len(train)), replace=False))
    tflite = to_int8_tflite(detector.model_, detector.normalise(train[pick]))

    def blob(threshold: float, golden: npt.NDArray[np.int8], ceiling: float = 0.0) -> bytes:
        return convert(
            tflite,
            spec,
            model_id=model_id,
            version=version,
            mean=detector.mean_,
            std=detector.std_,
            threshold=threshold,
            golden_inputs=golden,
            threshold_ceiling=ceiling,
        )

    draft = Model(blob(detector.threshold_, np.zeros((0, spec.n_features), np.int8)))
    tail = tail_threshold(draft.score(calibration), detector.false_alarm_rate)
    threshold = tail.threshold
    n = spec.n_features
    edges = np.array([np.full(n, -128), np.full(n, 127), np.zeros(n)], dtype=np.int8)
    golden = np.concatenate([draft.quantize(calibration[: GOLDEN_ROWS - len(edges)]), edges])
    vwm = blob(threshold, golden, CEILING_RATIO * threshold)
    return Int8Model(
        tflite=tflite,
        vwm=vwm,
        threshold=threshold,
        tail=tail,
        engine=Model(vwm),
        golden_inputs=golden,
    )
