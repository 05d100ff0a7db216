"""Dense Keras autoencoders and their full-integer int8 ``.tflite`` export.

The standard artefact of a model package is the ``.tflite`` made by the TF Lite converter
with a representative dataset, int8 inputs and outputs and only int8 builtin kernels, so
that it runs unchanged in TFLite Micro; :func:`vibewatch.edge.convert.convert` then turns
it into the ``.vwm`` blob the devices run. TensorFlow is imported on first use.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vibewatch.edge.tflm import captured_fd


def tensorflow() -> Any:
    """The ``tensorflow`` module, imported quietly on first use."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with warnings.catch_warnings():  # deprecations inside TensorFlow's own dependencies
        warnings.simplefilter("ignore", DeprecationWarning)
        import tensorflow as tf

    return tf


def dense_autoencoder(dims: Sequence[int], *, seed: int = 0) -> Any:
    """A Keras autoencoder of Dense layers ``dims[0] -> ... -> dims[-1]``.

    Hidden layers use ReLU, the output layer is linear. Weights and biases start from
    ``seed`` (biases non-zero, so the converter keeps its bias tensors). Layers carry fixed
    names, so the exported ``.tflite`` does not depend on how many models the process built
    before.
    """
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((dims[0],), name="features")
    x = inputs
    for i, width in enumerate(dims[1:]):
        last = i == len(dims) - 2
        x = tf.keras.layers.Dense(
            width,
            activation=None if last else "relu",
            bias_initializer=tf.keras.initializers.RandomNormal(stddev=0.1, seed=seed + i),
            name=f"dense_{i}",
        )(x)
    return tf.keras.Model(inputs, x, name="autoencoder")


def to_int8_tflite(model: Any, representative: npt.ArrayLike) -> bytes:
    """Full-integer int8 ``.tflite`` of a Keras model.

    Args:
        model: A Keras model with one 2-D float input.
        representative: Rows drawn from the training data; the converter calibrates the
            activation ranges on them (a few hundred rows are enough).
    """
    tf = tensorflow()
    rows = np.asarray(representative, dtype=np.float32)

    def samples() -> Any:
        for row in rows:
            yield [row[None, :]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The converter talks on both file descriptors and through Python's sys.stdout, and
    # warns that an int8 input has no statistics: they come from the dataset above.
    chatter = io.StringIO()
    with (
        captured_fd(1),
        captured_fd(2),
        contextlib.redirect_stdout(chatter),
        contextlib.redirect_stderr(chatter),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", "Statistics for quantized inputs", UserWarning)
        return bytes(converter.convert())
