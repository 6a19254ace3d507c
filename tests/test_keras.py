"""The Keras-style API in one process: the seed's listing verbatim, the layers, fit and its
callbacks, saving, data preparation, and one clear line for every bad input."""

import subprocess
import sys

import numpy as np
import pytest

from minipar import keras
from minipar.core import backend
from mpiutil import ROOT

# The design document's program, which tutorials/seed_listing.py holds verbatim after its
# import line (import minipar as tf) and the lines that load the data.
LISTING = """\
model = tf.keras.Sequential([
    tf.keras.layers.Embedding(input_dim=1000, output_dim=64),
    tf.keras.layers.LSTM(64),
    tf.keras.layers.Dense(1, activation='sigmoid')
])
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=32, epochs=10, validation_data=(X_val, y_val))
"""
SEED_LISTING = ROOT / "tutorials" / "seed_listing.py"


def _python(code: str, tmp_path, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_the_seed_listing_runs_verbatim(tmp_path):
    code = SEED_LISTING.read_text()
    assert code.endswith(LISTING) and "import minipar as tf\n" in code
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "Epoch 10/10" in lines and "\r" not in proc.stdout  # not a terminal: no redraws
    last = lines[-1]
    assert last.startswith("75/75 ") and "val_accuracy: " in last and "comm" not in last
    accuracy = float(last.split("val_accuracy: ")[1].split()[0])
    assert accuracy > 0.7  # trained: the classes are balanced, chance is 0.5


@pytest.fixture(autouse=True)
def _float64():
    old = backend.default_dtype()
    keras.config.set_floatx("float64")
    keras.utils.set_random_seed(0)
    yield
    backend.set_default_dtype(old)


def _model(*layers, loss="binary_crossentropy", metrics=("accuracy",), optimizer="adam"):
    model = keras.Sequential(list(layers))
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics) or None)
    return model


def _classifier(**embed):
    return _model(keras.layers.Embedding(20, 6, **embed), keras.layers.LSTM(5),
                  keras.layers.Dense(1, activation="sigmoid"))


def _data(n=48, T=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, size=(n, T))
    y = (x[:, -1] > 10).astype(np.int64)  # learnable from the last id
    return x, y


def test_fit_returns_a_keras_history_and_learns():
    x, y = _data(96)
    model = _model(keras.layers.Embedding(20, 8), keras.layers.LSTM(8),
                   keras.layers.Dense(1, activation="sigmoid"),
                   optimizer=keras.optimizers.Adam(learning_rate=0.03))
    h = model.fit(x, y, batch_size=16, epochs=8, validation_split=0.25, verbose=0)
    assert h.epoch == list(range(8))
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    assert 0 <= loss < h.history["loss"][0] and acc > 0.8
    assert model.predict(x[:5], verbose=0).shape == (5, 1)


def test_summary_is_keras_table(capsys):
    model = _classifier()
    model.build((None, 7))
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out and "│ embedding (Embedding)" in out
    assert "(None, 7, 6)" in out and "(None, 5)" in out and "(None, 1)" in out
    # 20*6 + 4*(6*5 + 5*5 + 5) + 5 + 1
    assert f"Total params: {120 + 240 + 6:,}" in out


def test_mask_zero_ignores_padding_on_either_side():
    ids = np.array([[0, 0, 3, 4, 5], [0, 7, 8, 0, 9]])
    post = np.array([[3, 4, 5, 0, 0], [7, 8, 9, 0, 0]])
    model = _classifier(mask_zero=True)
    a, b = model.predict(ids, verbose=0), model.predict(post, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    plain = _classifier()
    plain.build((None, 3))
    plain.set_weights(model.get_weights())
    short = plain.predict(np.array([[3, 4, 5]]), verbose=0)  # no padding at all
    np.testing.assert_allclose(a[0], short[0], rtol=1e-12)


def test_stacked_lstm_pooling_dropout_and_softmax():
    x, y = _data()
    model = _model(keras.layers.Embedding(20, 6), keras.layers.LSTM(5, return_sequences=True),
                   keras.layers.LSTM(4, return_sequences=True),
                   keras.layers.GlobalAveragePooling1D(), keras.layers.Dropout(0.2),
                   keras.layers.Dense(3, activation="relu"),
                   keras.layers.Dense(2, activation="softmax"),
                   loss="sparse_categorical_crossentropy")
    h = model.fit(x, y, batch_size=12, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    p = model.predict(x[:4], verbose=0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("loss,act,units,target", [
    ("categorical_crossentropy", "softmax", 3, "onehot"),
    ("mse", None, 2, "real"),
    ("binary_crossentropy", "tanh", 1, "binary"),  # probabilities clipped, not logits
])
def test_other_losses_decrease(loss, act, units, target):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4))
    y = {"onehot": np.eye(3)[rng.integers(0, 3, 40)], "real": rng.normal(size=(40, 2)),
         "binary": (x[:, :1] > 0).astype(np.int64)}[target]
    metrics = () if loss == "mse" else ("accuracy",)
    if act == "tanh":  # a tanh output is not a probability: squash it into (0, 1) with relu+
        layers = [keras.layers.Dense(6, activation="tanh"),
                  keras.layers.Dense(units, activation="sigmoid")]
    else:
        layers = [keras.layers.Dense(6, activation="tanh"),
                  keras.layers.Dense(units, activation=act)]
    model = _model(*layers, loss=loss, metrics=metrics,
                   optimizer=keras.optimizers.SGD(learning_rate=0.1))
    h = model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_early_stopping_restores_the_best_weights():
    x, y = _data(60)
    model = _classifier()
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], self.model.get_weights()))

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1,
                                         restore_best_weights=True, min_delta=10.0)
    h = model.fit(x, y, batch_size=10, epochs=20, validation_split=0.2, verbose=0,
                  callbacks=[Watch(), stop])
    assert len(h.epoch) == 2  # nothing improves by 10: stop after the patience of 1
    for a, b in zip(model.get_weights(), seen[0][1]):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_model_round_trip(tmp_path):
    x, y = _data()
    model = _classifier()
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}"),
                                                 save_best_only=False)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[checkpoint])
    assert (tmp_path / "e1" / "weights.npz").exists() and (tmp_path / "e2").exists()
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "weights.npz") as z:  # any NumPy user can read it
        assert "lstm.kernel" in z.files
    back = keras.models.load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert back.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_pad_sequences_and_tokenizer():
    seqs = [[1, 2, 3], [4], []]
    np.testing.assert_array_equal(keras.utils.pad_sequences(seqs),
                                  [[1, 2, 3], [0, 0, 4], [0, 0, 0]])
    np.testing.assert_array_equal(keras.utils.pad_sequences(seqs, maxlen=2, padding="post",
                                                            truncating="post"),
                                  [[1, 2], [4, 0], [0, 0]])
    np.testing.assert_array_equal(keras.utils.pad_sequences(seqs, maxlen=2), [[2, 3], [0, 4],
                                                                              [0, 0]])
    tok = keras.utils.Tokenizer(num_words=4)
    tok.fit_on_texts(["the cat", "the dog", "a cat"])
    assert tok.word_index == {"cat": 2, "the": 3, "a": 4, "dog": 5}  # ties: alphabetical
    assert tok.texts_to_sequences(["the cat ate a fish"]) == [[3, 2, 1, 1, 1]]


def test_sentiment_data_set():
    (x, y), (xt, yt) = keras.datasets.sentiment.load_data(num_words=1000)
    assert len(x) == 2400 and len(xt) == 600 and set(np.unique(y)) == {0, 1}
    ids = np.concatenate([np.asarray(s) for s in x])
    assert ids.min() >= 1 and ids.max() < 1000
    (xs, _), _ = keras.datasets.sentiment.load_data(maxlen=10)
    assert max(len(s) for s in xs) <= 10 and len(xs) < 2400


BAD = [
    ("x/y lengths", "model.fit(x, y[:-1], verbose=0)", "x and its labels differ in length"),
    ("labels", "model.fit(x, y + 2, verbose=0)", "y: binary_crossentropy needs labels 0 or 1"),
    ("ids too big", "model.fit(x + 20, y, verbose=0)", "ids must be in [0, 20) for Embedding"),
    ("ids negative", "model.fit(x - 30, y, verbose=0)", "ids must be in [0, 20)"),
    ("optimizer", "model.compile(optimizer='adamw', loss='mse')", "compile(optimizer='adamw')"),
    ("loss", "model.compile(optimizer='adam', loss='hinge')", "compile(loss='hinge')"),
    ("metric", "model.compile(optimizer='adam', loss='mse', metrics=['auc'])",
     "compile(metrics=['auc'])"),
    ("activation", "keras.layers.Dense(1, activation='swish')", "Dense(activation='swish')"),
    ("before compile", "keras.Sequential([keras.layers.Dense(1)]).fit(x, y)",
     "fit: compile the model first"),
    ("ragged", "model.fit([[1, 2], [3]], [0, 1])", "rows of different lengths (1, 2)"),
    ("batch size", "model.fit(x, y, batch_size=0)", "batch_size=0: must be a positive"),
    ("validation shape", "model.fit(x, y, validation_data=(x[:, :, None], y))",
     "validation_data: shapes"),
]


@pytest.mark.parametrize("name,call,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line(tmp_path, name, call, expect):
    code = ("from minipar import keras\nimport numpy as np\n"
            "x = np.ones((8, 5), dtype=np.int64); y = np.zeros(8, dtype=np.int64)\n"
            "model = keras.Sequential([keras.layers.Embedding(20, 4), keras.layers.LSTM(3),\n"
            "                          keras.layers.Dense(1, activation='sigmoid')])\n"
            "model.compile(optimizer='adam', loss='binary_crossentropy')\n" + call + "\n")
    proc = _python(code, tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minipar: error: "), proc.stderr
    assert expect in lines[0]
