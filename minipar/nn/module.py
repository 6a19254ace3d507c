"""Module and Parameter: named, nested collections of trainable tensors.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so

    class Net(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(4, 2)        # fc.weight, fc.bias

gives ``named_parameters()`` = [("fc.weight", ...), ("fc.bias", ...)] in a fixed order (the
order of assignment). That order is what data-parallel code packs into gradient buckets, so
every rank must build its model the same way.
"""

from __future__ import annotations

from collections import OrderedDict

from minipar.core import backend
from minipar.autograd.tensor import Tensor
from minipar.core.errors import CheckpointError


class Parameter(Tensor):
    """A tensor that is trained: requires_grad is always on."""

    def __init__(self, data, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class: holds parameters and submodules; ``forward`` does the work."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__()")
        self._params.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- traversal ---------------------------------------------------------------------
    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) pairs, depth first, in registration order."""
        for name, p in self._params.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def modules(self):
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def to_dtype(self, dtype):
        """Cast every parameter in place (float32 <-> float64)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
        return self

    # --- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Parameter name -> host (NumPy) copy of its data."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters by name. Missing, unexpected or misshapen entries
        are one clear error listing them, and nothing is changed."""
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {own[k].shape}"
                 for k in own if k in state and tuple(state[k].shape) != own[k].shape]
        if missing or extra or wrong:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if extra:
                parts.append("unexpected " + ", ".join(extra))
            if wrong:
                parts.append("shape mismatch " + "; ".join(wrong))
            raise CheckpointError("state does not fit this model: " + " | ".join(parts))
        for k, p in own.items():
            p.data = backend.from_numpy(state[k], dtype=p.dtype).copy()


def uniform(shape, bound: float, dtype=None):
    """Array drawn from U(-bound, bound) with the seeded generator, on the current device."""
    data = backend.rng().uniform(-bound, bound, size=shape)
    return backend.from_numpy(data, dtype=dtype or backend.default_dtype())
