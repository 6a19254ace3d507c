"""Check analytic gradients against central differences, in float64.

For a function f of tensors x_1..x_k with any output shape, the check uses the scalar
L = sum(f(x) * r) with a fixed random r (so every output element matters), and for each
input element x_j compares the backward gradient with

    dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)       error O(eps^2)

The error reported is |analytic - numeric| / max(1, |analytic|, |numeric|): absolute near
zero, relative for large gradients.

    >>> import numpy as np
    >>> from minipar.autograd import Tensor, tanh
    >>> gradcheck(lambda x: tanh(x), [np.random.default_rng(0).normal(size=(3, 4))]).ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd.tensor import Tensor


@dataclass
class GradcheckResult:
    ok: bool
    max_error: float
    input_index: int  # which input holds the worst element (-1 if no elements)
    element: tuple  # its index inside that input
    analytic: float
    numeric: float

    def __str__(self):
        status = "ok" if self.ok else "FAILED"
        return (f"gradcheck {status}: worst error {self.max_error:.3e} at input "
                f"{self.input_index} element {self.element} (analytic {self.analytic:.6g}, "
                f"numeric {self.numeric:.6g})")


def gradcheck(fn, inputs, eps: float = 1e-6, tol: float = 1e-6, seed: int = 0,
              wrt=None) -> GradcheckResult:
    """Compare ``fn``'s backward with central differences for every element of every input.

    ``inputs``: arrays (converted to float64 tensors that require grad) or tensors.
    ``wrt``: indices of the inputs to check (default: all floating inputs).
    """
    arrays = [xp.array(a.data if isinstance(a, Tensor) else a) for a in inputs]  # own copies
    arrays = [a.astype(numpy.float64) if a.dtype.kind == "f" else a for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]

    def make():
        return [Tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]

    with backend.dtype_scope("float64"):
        ts = make()
        out = fn(*ts)
        r = xp.asarray(numpy.random.default_rng(seed).normal(size=out.shape))
        (out * Tensor(r)).sum().backward()
        analytic = [ts[i].grad if ts[i].grad is not None else xp.zeros_like(arrays[i])
                    for i in range(len(ts))]

        def loss():
            return float((fn(*[Tensor(a) for a in arrays]).data * r).sum())

        worst = GradcheckResult(True, 0.0, -1, (), 0.0, 0.0)
        for i in wrt:
            a = arrays[i]
            flat = a.reshape(-1)
            for j in range(flat.size):
                old = float(flat[j])
                flat[j] = old + eps
                plus = loss()
                flat[j] = old - eps
                minus = loss()
                flat[j] = old
                num = (plus - minus) / (2 * eps)
                ana = float(analytic[i].reshape(-1)[j])
                err = abs(ana - num) / max(1.0, abs(ana), abs(num))
                if err > worst.max_error or worst.input_index < 0:
                    elem = tuple(int(k) for k in numpy.unravel_index(j, a.shape))
                    worst = GradcheckResult(True, err, i, elem, ana, num)
        worst.ok = worst.max_error <= tol
        return worst
