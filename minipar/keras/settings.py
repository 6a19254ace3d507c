"""``keras.config.set_floatx``: the float type of new weights (float32 unless changed)."""

from __future__ import annotations

import numpy as np

from minipar.core import backend
from minipar.core.errors import ConfigError


def set_floatx(name: str) -> None:
    """'float32' or 'float64' for every model built from now on."""
    if name not in ("float32", "float64"):
        raise ConfigError(f"set_floatx({name!r}): use 'float32' or 'float64'")
    backend.set_default_dtype(name)


def floatx() -> str:
    return np.dtype(backend.default_dtype()).name
