"""Build tests/models/data/keras_cnn.onnx: a small Keras CNN trained on the MNIST training sample
and exported to ONNX with tf2onnx, as a user of Keras would, with its logits on 16 digits.

Needs TensorFlow and tf2onnx, which trustlab does not depend on; run it in a separate
environment (`python -m venv tfenv && tfenv/bin/pip install tensorflow-cpu tf2onnx`):
    tfenv/bin/python scripts/build_keras_onnx_fixture.py --data-dir ../shared/data
The test that reads the file (tests/models/test_onnx_keras.py) needs neither.
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "data"


def _images(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    count = struct.unpack(">I", raw[4:8])[0]
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, 28, 28, 1).astype(np.float32) / 255


def _labels(path: Path) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=8).astype(np.int64)


def main() -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    x = _images(args.data_dir / "mnist" / "train-images-idx3-ubyte.gz")
    y = _labels(args.data_dir / "mnist" / "train-labels-idx1-ubyte.gz")
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(10),
        ]
    )
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss, metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input"),)
    # from_keras fails on Keras 3 (tf2onnx 1.17); exporting the model's call works
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda inputs: model(inputs, training=False)), spec, opset=13)
    OUT.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, OUT / "keras_cnn.onnx")
    np.save(OUT / "keras_cnn_inputs.npy", x[:16])
    np.save(OUT / "keras_cnn_logits.npy", model.predict(x[:16], verbose=0))


if __name__ == "__main__":
    main()
