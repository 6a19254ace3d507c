"""The differentiable ops: one class per op, forward and backward side by side.

Each ``backward`` receives g = dL/d(out) and returns dL/d(input) for every positional input.
Elementwise ops broadcast like NumPy; ``unbroadcast`` sums the gradient back over the
broadcast axes so it has its input's shape:

    out = a + b,  a: (3, 1), b: (4,)  ->  out: (3, 4)
    dL/da = sum over axis 1 of g (keepdims),  dL/db = sum over axis 0 of g
"""

from __future__ import annotations


from minipar.core.backend import xp
from minipar.autograd.tensor import Function


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape`` (the reverse of NumPy broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def _shape(x):
    return getattr(x, "shape", ())


# --- arithmetic ---------------------------------------------------------------------------
class Add(Function):
    """out = a + b;  da = g,  db = g (each unbroadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    """out = a - b;  da = g,  db = -g."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (_shape(a), _shape(b))
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(-g, sb)


class Mul(Function):
    """out = a * b;  da = g * b,  db = g * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = unbroadcast(g * b, _shape(a)) if ctx.needs_input_grad[0] else None
        db = unbroadcast(g * a, _shape(b)) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """out = a / b;  da = g / b,  db = -g * a / b^2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        da = unbroadcast(g / b, _shape(a)) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-g * a / (b * b), _shape(b)) if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    """out = -a;  da = -g."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Pow(Function):
    """out = a ** c for a constant exponent c;  da = g * c * a^(c-1)."""

    @staticmethod
    def forward(ctx, a, c):
        ctx.save_for_backward(a)
        ctx.c = c
        return a ** c

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved
        return g * ctx.c * a ** (ctx.c - 1), None


class MatMul(Function):
    """out = a @ b (batched over leading axes);  da = g @ b^T,  db = a^T @ g.

    1-D operands are promoted as NumPy does (a vector on the left is a row, on the right a
    column) and the gradient is squeezed back."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape)
            da = da.reshape(a.shape)
        if ctx.needs_input_grad[1]:
            db = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape)
            db = db.reshape(b.shape)
        return da, db


# --- reductions ---------------------------------------------------------------------------
def _expand(g, shape, axis, keepdims):
    """Put back the reduced axes of g so it broadcasts against the input shape."""
    if axis is None:
        return xp.broadcast_to(g.reshape((1,) * len(shape)), shape)
    if not keepdims:
        axes = (axis,) if isinstance(axis, int) else axis
        axes = sorted(a % len(shape) for a in axes)
        for a in axes:
            g = xp.expand_dims(g, a)
    return xp.broadcast_to(g, shape)


class Sum(Function):
    """out = sum over axis;  da = g broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.args = (a.shape, axis, keepdims)
        return a.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _expand(g, *ctx.args).copy()


class Mean(Function):
    """out = sum / n over axis;  da = g / n broadcast back."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = a.mean(axis=axis, keepdims=keepdims)
        ctx.args = (a.shape, axis, keepdims)
        ctx.n = a.size // max(out.size, 1) if a.size else 1
        return out

    @staticmethod
    def backward(ctx, g):
        return _expand(g / ctx.n, *ctx.args).copy()


class Max(Function):
    """out = max over axis;  da = g at the arg-max positions, split evenly between ties."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        out = a.max(axis=axis, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.args = (a.shape, axis, keepdims)
        return out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))

    @staticmethod
    def backward(ctx, g):
        a, out = ctx.saved
        shape, axis, keepdims = ctx.args
        mask = (a == out).astype(g.dtype)
        mask /= mask.sum(axis=axis, keepdims=True)
        return _expand(g, shape, axis, keepdims) * mask


# --- shape --------------------------------------------------------------------------------
class Reshape(Function):
    """out = a viewed with a new shape;  da = g reshaped back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Transpose(Function):
    """out = a with axes permuted;  da = g with the inverse permutation."""

    @staticmethod
    def forward(ctx, a, axes=None):
        axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
        ctx.inverse = tuple(xp.argsort(xp.asarray(axes)).tolist())
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse)


class GetItem(Function):
    """out = a[index];  da = zeros with g added at the indexed positions (repeated integer
    indices accumulate)."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.args = (a.shape, index)
        return a[index]

    @staticmethod
    def backward(ctx, g):
        shape, index = ctx.args
        out = xp.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g  # slices and integers never repeat a position
        else:
            xp.add.at(out, index, g)
        return out, None


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class Concatenate(Function):
    """out = concat(xs, axis);  dx_i = the slice of g that x_i filled."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.sizes = [x.shape[axis] for x in xs]
        return xp.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        cuts = xp.cumsum(xp.asarray(ctx.sizes[:-1])).tolist()
        return tuple(xp.split(g, cuts, axis=ctx.axis))


class Stack(Function):
    """out = stack(xs, axis);  dx_i = g taken at position i along axis."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        return xp.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(xp.moveaxis(g, ctx.axis, 0))
