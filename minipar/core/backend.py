"""The array module, the dtype policy and seeded randomness, in one place.

Every tensor op reaches its array module through ``xp``, the name the NumPy and CuPy
documentation give it: NumPy by default, CuPy when the device is ``cuda``
(``set_device("cuda")`` or ``MINIPAR_DEVICE=cuda`` in the environment before import).
Nothing else in minipar imports numpy or cupy for tensor math, so the same code runs on
either.

    >>> from minipar.core import backend
    >>> from minipar.core.backend import xp
    >>> xp.zeros(3, dtype=backend.default_dtype()).dtype
    dtype('float32')

``xp`` is a stand-in that forwards every attribute to the current module, so a name
imported before ``set_device`` still reaches the right one; ``module()`` is the module
itself (``backend.module() is numpy``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy

__all__ = [
    "xp", "module", "device", "set_device", "default_dtype", "set_default_dtype", "dtype_scope",
    "to_numpy", "from_numpy", "on_device", "TRANSFERS", "reset_transfers", "rng", "seed",
    "BackendError", "env_device",
]


class BackendError(RuntimeError):
    """A device or dtype request that this machine cannot honour."""


class _ArrayModule:
    """``xp.zeros``, ``xp.exp``...: the current device's array module.

    A name is looked up in the module on its first use and kept in this object's own
    ``__dict__``, so every later ``xp.name`` is a plain attribute hit (``__getattr__`` runs
    only for names not found there): a step of a small LSTM makes hundreds of these calls.
    ``set_device`` forgets them all."""

    def __getattr__(self, name):
        value = getattr(_module, name)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"<xp: {_module.__name__}>"


_module = numpy
xp = _ArrayModule()
device = "cpu"
_default_dtype = numpy.float32
_DTYPES = {"float32": numpy.float32, "float64": numpy.float64}


def _load_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            "device 'cuda' needs CuPy: pip install 'minipar[gpu]' (or cupy-cuda13x for CUDA 13)"
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendError(f"device 'cuda' asked for, but CUDA is not usable: {exc}") from exc
    if n < 1:
        raise BackendError("device 'cuda' asked for, but no GPU was found")
    return cupy


def set_device(name: str) -> None:
    """Choose the array module: ``cpu`` (NumPy) or ``cuda`` (CuPy)."""
    global _module, device
    name = (name or "cpu").lower()
    if name == "cpu":
        _module, device = numpy, "cpu"
    elif name in ("cuda", "gpu"):
        _module, device = _load_cupy(), "cuda"
    else:
        raise BackendError(f"unknown device {name!r}: use 'cpu' or 'cuda'")
    xp.__dict__.clear()  # names looked up in the old module


def module():
    """The array module itself (``numpy`` or ``cupy``), e.g. for ``module() is numpy``."""
    return _module


def default_dtype():
    """The floating dtype new tensors get (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype: ``float32`` or ``float64`` (name or numpy dtype)."""
    global _default_dtype
    key = numpy.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise BackendError(f"unsupported dtype {dtype!r}: use float32 or float64")
    _default_dtype = _DTYPES[key]


@contextmanager
def dtype_scope(dtype):
    """Temporarily change the default dtype (gradient checks use float64)."""
    old = _default_dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(old)


# Copies between host and device, counted (d2h: device to host, h2d: host to device), so a
# test can check that a training step crosses only where the design says it does.
TRANSFERS = {"d2h": 0, "d2h_bytes": 0, "h2d": 0, "h2d_bytes": 0}


def reset_transfers() -> None:
    for k in TRANSFERS:
        TRANSFERS[k] = 0


def on_device(a) -> bool:
    """True for an array of the device module (CuPy's have ``.get()``), False for a host
    (NumPy) array or a number."""
    return type(a) is not numpy.ndarray and hasattr(a, "get") and hasattr(a, "shape")


def to_numpy(a):
    """Host copy of an array from either module (a NumPy array is returned as is)."""
    if not on_device(a):
        return numpy.asarray(a)
    TRANSFERS["d2h"] += 1
    TRANSFERS["d2h_bytes"] += a.nbytes
    return a.get()


def from_numpy(a, dtype=None):
    """Move a host array onto the current device (no copy on the CPU when dtype matches)."""
    if device != "cpu":
        TRANSFERS["h2d"] += 1
        TRANSFERS["h2d_bytes"] += numpy.asarray(a).nbytes
    return xp.asarray(a, dtype=dtype)


_rng = numpy.random.default_rng(0)


def seed(s) -> None:
    """Seed minipar's generator (parameter init, dropout masks, sampling); ``s`` is an int
    or a sequence of ints (e.g. [seed, rank] for a stream of one's own)."""
    global _rng
    _rng = numpy.random.default_rng(s)


def rng() -> numpy.random.Generator:
    """The seeded host generator. Draw on the host, then ``from_numpy``: identical draws on
    CPU and GPU make runs comparable across devices."""
    return _rng


def get_rng_state() -> dict:
    """The generator's state, for checkpoints."""
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _rng.bit_generator.state = state


def env_device() -> str:
    """The device ``MINIPAR_DEVICE`` asks for, ``cpu`` when it is unset."""
    return os.environ.get("MINIPAR_DEVICE") or "cpu"


if env_device() != "cpu":
    try:
        set_device(env_device())
    except BackendError as _exc:  # a setting this machine cannot honour: one line, said once
        import sys

        from minipar.core.launcher import launcher_rank

        if launcher_rank() == 0:
            print(f"minipar: error: MINIPAR_DEVICE={env_device()}: {_exc}", file=sys.stderr)
        raise SystemExit(2) from None
