"""Ops for neural networks: activations, embedding lookup, losses, dropout.

Activations are computed from ``exp`` (faster than ``tanh`` on the CPU) in forms that never
overflow:

    sigmoid(x) = 1 / (1 + e^-x)            = e^x / (1 + e^x)   (the form used when x < 0)
    tanh(x)    = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|)
"""

from __future__ import annotations

import numpy

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd.tensor import Function


def sigmoid_array(x):
    """Overflow-free logistic function on a raw array."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0, e).astype(x.dtype, copy=False) / (1.0 + e)


def tanh_array(x):
    """Overflow-free tanh on a raw array, built from exp."""
    e = xp.exp(-2.0 * xp.abs(x))
    return xp.copysign((1.0 - e) / (1.0 + e), x)


class Exp(Function):
    """out = e^a;  da = g * out."""

    @staticmethod
    def forward(ctx, a):
        out = xp.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


class Log(Function):
    """out = ln a;  da = g / a."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return xp.log(a)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.saved[0]


class Tanh(Function):
    """out = tanh a;  da = g * (1 - out^2)."""

    @staticmethod
    def forward(ctx, a):
        out = tanh_array(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved[0]
        return g * (1.0 - out * out)


class Sigmoid(Function):
    """out = 1 / (1 + e^-a);  da = g * out * (1 - out)."""

    @staticmethod
    def forward(ctx, a):
        out = sigmoid_array(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.saved[0]
        return g * out * (1.0 - out)


class Relu(Function):
    """out = max(a, 0);  da = g where a > 0, else 0."""

    @staticmethod
    def forward(ctx, a):
        mask = a > 0
        ctx.save_for_backward(mask)
        return a * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.saved[0]


def scatter_add_rows(num_rows: int, idx, g):
    """out[r] = sum of g[i] over i with idx[i] == r, for g of shape (N, D).

    On the CPU: sort the indices once, sum each run of equal indices with one
    ``add.reduceat``, write the sums: O(N log N + N D), no Python loop, no ``add.at``.
    On a GPU, ``add.at`` is an atomic scatter and already fast."""
    out = xp.zeros((num_rows, g.shape[1]), dtype=g.dtype)
    if idx.size == 0:
        return out
    if backend.module() is not numpy:
        xp.add.at(out, idx, g)
        return out
    order = numpy.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = numpy.flatnonzero(numpy.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    out[sorted_idx[starts]] = numpy.add.reduceat(g[order], starts, axis=0)
    return out


class Embedding(Function):
    """out[..., :] = weight[idx[...], :];  dweight = scatter-add of g into the used rows."""

    @staticmethod
    def forward(ctx, weight, idx):
        ctx.save_for_backward(idx)
        ctx.num_rows = weight.shape[0]
        return weight[idx]

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved
        flat = g.reshape(-1, g.shape[-1])
        return scatter_add_rows(ctx.num_rows, idx.reshape(-1), flat), None


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over the last axis.

    For logits z (N, C) and targets t (N,), with rows where t == ignore_index left out and
    n the number of rows kept:

        loss = -(1/n) sum_i [z_i,t_i - log sum_c e^z_i,c]      (reduction="mean"; "sum" drops 1/n)
        dz_i = (softmax(z_i) - onehot(t_i)) / n
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=None, reduction="mean"):
        z = logits - logits.max(axis=-1, keepdims=True)
        rows = xp.arange(z.shape[0])
        keep = None
        safe_t = targets
        if ignore_index is not None:
            keep = targets != ignore_index
            safe_t = xp.where(keep, targets, 0)
        zt = z[rows, safe_t]
        # e = exp(z) and then p = e / s in z's own buffer: for a 10,000-word softmax these
        # are the largest arrays of a step, and two fresh ones cost a pass each to fault in
        e = xp.exp(z, out=z)
        s = e.sum(axis=-1, keepdims=True)
        nll = xp.log(s[:, 0]) - zt
        if keep is not None:
            nll = nll * keep
            n = int(keep.sum())
        else:
            n = z.shape[0]
        scale = 1.0 / max(n, 1) if reduction == "mean" else 1.0
        ctx.save_for_backward(xp.divide(e, s, out=e), safe_t, keep)
        ctx.scale = scale
        return xp.asarray(nll.sum() * scale, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        p, t, keep = ctx.saved
        d = p.copy()
        d[xp.arange(d.shape[0]), t] -= 1.0
        if keep is not None:
            d *= keep[:, None]
        return d * (g * ctx.scale), None


class BCEWithLogits(Function):
    """Binary cross-entropy on logits x with targets y in [0, 1], overflow-free:

        loss = (1/n) sum_i [max(x_i, 0) - x_i y_i + log(1 + e^-|x_i|)]
        dx_i = (sigmoid(x_i) - y_i) / n
    """

    @staticmethod
    def forward(ctx, x, y, reduction="mean"):
        y = y.astype(x.dtype, copy=False)
        loss = xp.maximum(x, 0) - x * y + xp.log1p(xp.exp(-xp.abs(x)))
        scale = 1.0 / max(x.size, 1) if reduction == "mean" else 1.0
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        return xp.asarray(loss.sum() * scale, dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved
        return (sigmoid_array(x) - y) * (g * ctx.scale), None


class Dropout(Function):
    """Inverted dropout: out = a * m / (1 - p) with m ~ Bernoulli(1 - p), drawn from the
    seeded backend generator;  da = g * m / (1 - p)."""

    @staticmethod
    def forward(ctx, a, p=0.5, training=True):
        if not training or p == 0.0:
            ctx.mask = None
            return a
        keep = backend.rng().random(a.shape) >= p
        mask = backend.from_numpy(keep).astype(a.dtype) * (1.0 / (1.0 - p))
        ctx.mask = mask
        return a * mask

    @staticmethod
    def backward(ctx, g):
        return g if ctx.mask is None else g * ctx.mask
