"""The seed's listing in TensorFlow's own Keras, for ``bench keras --tensorflow PYTHON``.

Run by an interpreter that has TensorFlow (minipar need not be installed there):

    PYTHON _keras_tf.py DATA.npz SEED EPOCHS OUT.json

DATA.npz holds the arrays minipar's ``bench keras`` trains on (x, y, xv, yv: the built-in
sentiment sentences, padded to 40 ids), so both frameworks see the same split. It writes
{"val_accuracy": per epoch, "seconds": per epoch (training plus validation), "version"}.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Run as a script, this folder comes first on the path, and its keras.py (minipar's bench)
# would stand in for the real keras package that TensorFlow imports
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(data: str, seed: int, epochs: int, out: str) -> None:
    d = np.load(data)
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        tf.keras.layers.Embedding(input_dim=1000, output_dim=64),
        tf.keras.layers.LSTM(64),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    seconds = []

    class Clock(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    h = model.fit(d["x"], d["y"], batch_size=32, epochs=epochs,
                  validation_data=(d["xv"], d["yv"]), verbose=0, callbacks=[Clock()])
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"val_accuracy": [float(v) for v in h.history["val_accuracy"]],
                   "seconds": seconds, "version": tf.__version__}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
