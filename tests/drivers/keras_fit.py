"""Fit a small Keras-style model in float64 and save what it learned:
``python keras_fit.py OUT_DIR [ALLREDUCE]`` (under mpiexec or alone).

The same script, unchanged, on 1 or K ranks: rank 0 writes the final weights, the History,
evaluate() and predict() of the held-out rows; the test compares K ranks with one process.
Dropout is in the model, with the seed it draws from minipar's generator: its masks are
drawn for the global batch, so they agree too. The
embedding table (300 x 32 float64, 75 KiB) is large enough to be sent as rows.
"""

import json
import os
import sys

import numpy as np

from minipar import keras

out = sys.argv[1]
algorithm, _, how = (sys.argv[2] if len(sys.argv) > 2 else "ring").partition("+")
overlap = how == "overlap"  # "ring+overlap": small buckets leave during backward
keras.config.set_floatx("float64")
keras.utils.set_random_seed(7)
(x, y), (xv, yv) = keras.datasets.sentiment.load_data(num_words=300)
x = keras.utils.pad_sequences(x[:195], maxlen=12)  # the last batch, 3 rows: on 4 ranks
y = y[:195]                                          # one rank has none
xv = keras.utils.pad_sequences(xv[:60], maxlen=12)
yv = yv[:60]
model = keras.Sequential([keras.layers.Embedding(300, 32), keras.layers.LSTM(8),
                          keras.layers.Dropout(0.3),
                          keras.layers.Dense(1, activation="sigmoid")])
how = keras.Distribute(allreduce=algorithm, table=False, overlap=overlap,
                       bucket_kb=1 if overlap else 1024)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
              metrics=["accuracy"], distribute=how)
history = model.fit(x, y, batch_size=24, epochs=3, validation_data=(xv, yv), verbose=0, seed=3)
result = {"history": history.history, "epoch": history.epoch,
          "evaluate": model.evaluate(xv, yv, verbose=0),
          "sparse_steps": getattr(model.compiled["parallel"].sync, "sent_sparse", 0)}
predictions = model.predict(xv, batch_size=16, verbose=0)
if model.compiled["parallel"].rank == 0:
    np.savez(os.path.join(out, "weights.npz"), *model.get_weights(), predictions=predictions)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)
