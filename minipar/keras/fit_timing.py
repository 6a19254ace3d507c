"""A saved Keras-style model as the advisor sees it: its steps timed here, by ``fit``.

    python -m minipar.keras.fit_timing '{"path": "runs/model", "rows": [32, 8, 2]}'  # JSON out

``workload(path, batch)`` loads the model (``load_model``), counts it from its config
(``planning/workload.keras_counts``) and times ``fit`` on random ids below the embedding's
``input_dim`` and random labels the loss accepts, in a child process with one BLAS thread:
one warm-up epoch, then one timed epoch of ``STEPS`` steps at each b in {b', b'/4, b'/16},
b' = min(B, 256); the seconds per step (forward, backward and the optimizer) give
fb(b) = t0 + t1 b. The model was compiled when it was saved, or is compiled here with Adam
and the loss its last layer suggests (binary cross-entropy for one unit, else sparse
categorical).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from minipar.core.errors import ConfigError
from minipar.planning.workload import Workload, keras_counts
from minipar.training.profile import THREAD_VARS, fit_line

STEPS = 6


def _data(config: dict, rows: int, seed: int = 0):
    layers = config["layers"]
    seq = int((config.get("input_shape") or [None, 40])[-1] or 40)
    vocab = next((c["config"]["input_dim"] for c in layers if c["class"] == "Embedding"), 2)
    units = next((c["config"]["units"] for c in reversed(layers) if c["class"] == "Dense"), 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(1, max(vocab, 2), size=(rows, seq))
    y = rng.integers(0, 2 if units == 1 else units, size=rows)
    return x, (y.astype(np.float32) if units == 1 else y), units


def time_fit(path: str, rows_list) -> dict:
    """{b: seconds per fit step} (see the module docstring)."""
    from minipar.keras.sequential import load_model
    from minipar.keras.saving import read_model

    config, _ = read_model(path)
    model = load_model(path)
    out = {}
    for b in rows_list:
        x, y, units = _data(config, b * STEPS)
        if model.compiled is None:
            model.compile(optimizer="adam", loss="binary_crossentropy" if units == 1 else
                          "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)  # warm-up
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)
        out[b] = (time.perf_counter() - t0) / STEPS
    return out


def workload(path: str, batch: int, itemsize: int = 4, log=None) -> Workload:
    from minipar.keras.saving import read_model

    config, _ = read_model(path)
    counts = keras_counts(config, itemsize)
    top = min(batch, 256)
    rows = sorted({max(1, top // 4**k) for k in range(3)}, reverse=True)
    if log:
        log(f"timing fit steps of {path} on this machine at {rows} rows (one core)...")
    env = dict(os.environ, **{v: "1" for v in THREAD_VARS})
    proc = subprocess.run([sys.executable, "-m", __name__,
                           json.dumps({"path": str(path), "rows": rows})],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"timing {path} failed: {last}")
    fb = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    t0, t1 = fit_line(list(fb), list(fb.values()))
    return Workload(name=f"Keras model {path}", batch=batch, itemsize=itemsize,
                    fb_line=(t0, t1), **counts,
                    source=f"measured here with fit: {1e3 * fb[top]:.3g} ms per step of "
                           f"{top} rows on one core; step(b) = {1e3 * t0:.3g} ms + "
                           f"{1e3 * t1:.3g} ms x b (optimizer included)")


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(time_fit(spec["path"], spec["rows"])))
