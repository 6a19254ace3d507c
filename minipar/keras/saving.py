"""The saved form of a Keras-style model: a folder any NumPy user can open.

    path/config.json   {"format": "minipar-keras", "version": 1, "name": ...,
                        "input_shape": [null, 40], "layers": [{"class": "LSTM",
                        "config": {"units": 64, ...}}, ...], "compile": {...} or null}
    path/weights.npz   one array per weight, named "layer.weight" (np.load(path)["lstm.kernel"])

Rank 0 writes both into a fresh folder beside ``path`` and then renames it into place, so a
crash never leaves half a model; an existing model at ``path`` is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from minipar.core.errors import CheckpointError, ConfigError
from minipar.keras import optimizers as opt

FORMAT, VERSION = "minipar-keras", 1


def write_model(model, path, rank: int | None) -> None:
    """Save ``model`` (see the module docstring); ranks other than 0 write nothing."""
    if rank not in (None, 0):
        return
    if not model.built:
        raise ConfigError("save: the model is not built yet (fit it, or call build)")
    path = os.fspath(path)
    compiled = None
    if model.compiled is not None:
        c = model.compiled
        compiled = {"optimizer": opt.to_config(c["optimizer"]), "loss": c["loss"],
                    "metrics": c["metrics"]}
    config = {"format": FORMAT, "version": VERSION, "name": model.name,
              "input_shape": [None if d is None else int(d) for d in model.input_shape],
              "layers": [{"class": layer.kind, "config": layer.get_config()}
                         for layer in model.layers],
              "compile": compiled}
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".saving-", dir=parent)
    try:
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=1)
        np.savez(os.path.join(tmp, "weights.npz"), **model.state_dict())
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def read_model(path) -> tuple[dict, dict]:
    """(config, {name: array}) of a saved model; a clear error for anything else."""
    path = os.fspath(path)
    cfg_path, w_path = os.path.join(path, "config.json"), os.path.join(path, "weights.npz")
    if not os.path.isfile(cfg_path) or not os.path.isfile(w_path):
        raise CheckpointError(f"{path}: not a saved model (config.json and weights.npz)")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
        with np.load(w_path) as z:
            weights = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: config.json is not a {FORMAT} model")
    return config, weights


def load_weights(model, weights: dict, path) -> None:
    try:
        model.load_state_dict(weights)
    except CheckpointError as exc:
        raise CheckpointError(f"{os.fspath(path)}: {exc}") from None
