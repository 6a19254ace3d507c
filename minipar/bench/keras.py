"""The seed's Keras listing on minipar: validation accuracy, time per epoch, 2 ranks vs 1.

    python -m minipar.bench keras [--seeds 0,1,2] [--epochs 10] [--json]
        [--tensorflow PYTHON]

The model and fit of the design document: Embedding(1000, 64) -> LSTM(64) -> Dense(1,
sigmoid), Adam, binary cross-entropy, batch 32, 10 epochs, on the built-in sentiment
sentences (2,400 to train, 600 to validate, padded to 40 ids). Each run is a fresh process:

    one process, BLAS threads as minipar sets them (both cores)   for accuracy and time
    one process, one BLAS thread
    mpiexec -n 2 (one BLAS thread each)

For each seed (weights and shuffling) it reports the last epoch's validation accuracy, the
best epoch's, and the median time of an epoch (training plus validation, as Keras' line
shows it). The speed-up of 2 ranks is the median epoch time of one process over that of two
ranks, on the same seeds. Targets (docs/benchmarks.md): median last-epoch accuracy >= 0.80,
an epoch <= 0.5 s, 2 ranks >= 1.3x one process.

With ``--tensorflow PYTHON`` (an interpreter that has TensorFlow) the same listing also runs
in TensorFlow's own Keras (``_keras_tf.py``), on the same arrays and seeds, one process: the
yardstick for the accuracy and the time, measured beside minipar's rather than quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from minipar import keras
from minipar.comm import launch

MODES = {"1 process": (1, None), "1 process, 1 BLAS thread": (1, "1"), "2 ranks": (2, "1")}


def arrays():
    """x, y, x_val, y_val: the built-in sentences (80/20), ids below 1,000, padded to 40."""
    (x, y), (xv, yv) = keras.datasets.sentiment.load_data(num_words=1000)
    return (keras.utils.pad_sequences(x, maxlen=40), y,
            keras.utils.pad_sequences(xv, maxlen=40), yv)


def worker(seed: int, epochs: int, out: str) -> None:
    """One fit of the listing; rank 0 writes {accuracy per epoch, seconds per epoch}."""
    keras.utils.set_random_seed(seed)
    x, y, xv, yv = arrays()
    model = keras.Sequential([keras.layers.Embedding(input_dim=1000, output_dim=64),
                              keras.layers.LSTM(64),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                  distribute=keras.Distribute(table=False))
    seconds = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.t0)

    h = model.fit(x, y, batch_size=32, epochs=epochs, validation_data=(xv, yv), verbose=0,
                  callbacks=[Clock()], seed=seed)
    if model.compiled["parallel"].rank == 0:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({"val_accuracy": h.history["val_accuracy"], "seconds": seconds}, f)


def sentiment_arrays(path: str) -> None:
    """The worker's training and validation arrays, saved for another framework."""
    x, y, xv, yv = arrays()
    np.savez(path, x=x, y=y, xv=xv, yv=yv)


def run_tensorflow(python: str, data: str, seed: int, epochs: int) -> dict:
    fd, out = tempfile.mkstemp(suffix=".json", prefix="minipar-bench-keras-tf-")
    os.close(fd)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_keras_tf.py")
    cmd = [python, script, data, str(seed), str(epochs), out]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
        res = json.load(f)
    os.unlink(out)
    return {"mode": f"TensorFlow {res['version']}", "seed": seed,
            "last": res["val_accuracy"][-1], "best": max(res["val_accuracy"]),
            "epoch_s": statistics.median(res["seconds"])}


def run(mode: str, seed: int, epochs: int) -> dict:
    ranks, threads = MODES[mode]
    fd, out = tempfile.mkstemp(suffix=".json", prefix="minipar-bench-keras-")
    os.close(fd)
    env = dict(os.environ)
    if threads:
        env["OPENBLAS_NUM_THREADS"] = threads
    cmd = [sys.executable, "-m", "minipar.bench", "keras", "--worker", "--seed", str(seed),
           "--epochs", str(epochs), "--out", out]
    if ranks > 1:
        cmd = [launch.find_mpiexec(), "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"minipar: error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with open(out, encoding="utf-8") as f:
        res = json.load(f)
    os.unlink(out)
    return {"mode": mode, "seed": seed, "last": res["val_accuracy"][-1],
            "best": max(res["val_accuracy"]), "epoch_s": statistics.median(res["seconds"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench keras", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the weights and the shuffling")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--tensorflow", metavar="PYTHON", help="also run the listing in "
                    "TensorFlow's Keras with this interpreter, on the same data and seeds")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.seed, a.epochs, a.out)
        return 0
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    if not seeds or a.epochs < 1:
        ap.error("give at least one seed and one epoch")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            print(f"note: {var}={os.environ[var]} is set; it slows NumPy's BLAS on this CPU "
                  f"(run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)", file=sys.stderr)
    if a.tensorflow and not shutil.which(a.tensorflow):
        ap.error(f"--tensorflow {a.tensorflow}: no such interpreter")
    rows = [run(mode, s, a.epochs) for s in seeds for mode in MODES]
    if a.tensorflow:
        with tempfile.TemporaryDirectory(prefix="minipar-bench-keras-") as tmp:
            data = os.path.join(tmp, "sentiment.npz")
            sentiment_arrays(data)
            rows += [run_tensorflow(a.tensorflow, data, s, a.epochs) for s in seeds]
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| mode | seed | val accuracy, last epoch | best epoch | median s per epoch |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['seed']} | {r['last']:.4f} | {r['best']:.4f} | "
              f"{r['epoch_s']:.3f} |")
    by = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    epoch = {m: statistics.median(r["epoch_s"] for r in rs) for m, rs in by.items()}
    acc = statistics.median(r["last"] for r in by["1 process"])
    print(f"\nmedian last-epoch validation accuracy (1 process): {acc:.4f} (target >= 0.80)")
    print(f"median epoch: {epoch['1 process']:.3f} s one process (target <= 0.5 s), "
          f"{epoch['1 process, 1 BLAS thread']:.3f} s with one BLAS thread, "
          f"{epoch['2 ranks']:.3f} s on 2 ranks")
    print(f"2 ranks against one process: {epoch['1 process'] / epoch['2 ranks']:.2f}x "
          f"(one BLAS thread: {epoch['1 process, 1 BLAS thread'] / epoch['2 ranks']:.2f}x; "
          f"target >= 1.3x)")
    tf_rows = [r for r in rows if r["mode"].startswith("TensorFlow")]
    if tf_rows:
        print(f"{tf_rows[0]['mode']}, one process: median last-epoch validation accuracy "
              f"{statistics.median(r['last'] for r in tf_rows):.4f}, median epoch "
              f"{statistics.median(r['epoch_s'] for r in tf_rows):.3f} s")
    return 0
