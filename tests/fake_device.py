"""A stand-in GPU for CPU tests of the device code paths: NumPy arrays of a subclass with
``.get()`` (as CuPy's arrays have), made by a module that wraps NumPy's array makers.

    with fake_device():            # backend.xp is now the stand-in, backend.device "cuda"
        ...

Arithmetic is NumPy's; only the host/device boundary is imitated, so staging copies and
transfer counts can be checked without a GPU.
"""

import contextlib
import types

import numpy as np

from minipar.core import backend


class DeviceArray(np.ndarray):
    def get(self):
        return np.array(self)  # a host copy (a plain ndarray)


def _wrapped(fn):
    def make(*args, **kwargs):
        return np.asarray(fn(*args, **kwargs)).view(DeviceArray)
    return make


def module() -> types.ModuleType:
    fake = types.ModuleType("fakecupy")
    fake.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    for name in ("asarray", "array", "zeros", "empty", "ones", "full", "zeros_like",
                 "empty_like", "concatenate", "arange", "stack", "ascontiguousarray"):
        setattr(fake, name, _wrapped(getattr(np, name)))
    fake.ndarray = DeviceArray
    return fake


@contextlib.contextmanager
def fake_device():
    old = backend._module, backend.device
    backend._module, backend.device = module(), "cuda"
    backend.xp.__dict__.clear()  # xp keeps the names it looked up; these are the fake's now
    try:
        yield
    finally:
        backend._module, backend.device = old
        backend.xp.__dict__.clear()
