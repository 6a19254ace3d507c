"""Every op against central differences (float64), on random shapes with broadcasting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.autograd import ops
from minipar.autograd.gradcheck import gradcheck

SETTINGS = settings(max_examples=12, deadline=None)
dims = st.integers(1, 4)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together: b drops leading axes and sets some to 1."""
    shape = draw(st.lists(dims, min_size=1, max_size=3))
    keep = draw(st.integers(0, len(shape)))
    b = [1 if draw(st.booleans()) else n for n in shape[len(shape) - keep:]]
    if draw(st.booleans()):
        return tuple(shape), tuple(b)
    return tuple(b), tuple(shape)


def rand(shape, seed, low=None):
    x = np.random.default_rng(seed).normal(size=shape)
    if low is not None:  # keep away from singular points (division, log)
        x = np.abs(x) + low
    return x


def check(fn, *inputs, tol=1e-6):
    res = gradcheck(fn, list(inputs), tol=tol)
    assert res.ok, str(res)


@SETTINGS
@given(broadcast_pair(), st.sampled_from(["add", "sub", "mul", "div"]), st.integers(0, 99))
def test_binary_elementwise_broadcasting(shapes, name, seed):
    sa, sb = shapes
    fn = getattr(ops, name)
    b = rand(sb, seed + 1, low=0.5) if name == "div" else rand(sb, seed + 1)
    check(fn, rand(sa, seed), b)


@SETTINGS
@given(st.lists(dims, min_size=1, max_size=3), st.sampled_from(
    ["neg", "exp", "log", "tanh", "sigmoid", "relu", "pow"]), st.integers(0, 99))
def test_unary(shape, name, seed):
    x = rand(shape, seed, low=0.2) if name in ("log", "pow") else rand(shape, seed)
    if name == "relu":  # central differences straddling 0 are not a derivative
        x = np.where(np.abs(x) < 1e-3, 0.5, x)
    fn = (lambda a: ops.pow(a, 2.5)) if name == "pow" else getattr(ops, name)
    check(fn, x)


@SETTINGS
@given(st.lists(dims, min_size=0, max_size=2), dims, dims, dims, st.integers(0, 99))
def test_matmul_batched(batch, n, k, m, seed):
    check(ops.matmul, rand((*batch, n, k), seed), rand((k, m), seed + 1))
    check(ops.matmul, rand((n, k), seed), rand((*batch, k, m), seed + 1))
    check(ops.matmul, rand((k,), seed), rand((*batch, k, m), seed + 1))
    check(ops.matmul, rand((*batch, n, k), seed), rand((k,), seed + 1))


@SETTINGS
@given(st.lists(dims, min_size=1, max_size=3), st.booleans(), st.integers(0, 99),
       st.sampled_from(["sum", "mean", "max"]))
def test_reductions(shape, keepdims, seed, name):
    x = rand(shape, seed)
    axis = seed % (len(shape) + 1) - 1  # -1 .. ndim-1; -1 used as None below
    axis = None if axis < 0 else axis
    fn = getattr(ops, name)
    check(lambda a: fn(a, axis=axis, keepdims=keepdims), x)
    if len(shape) >= 2:
        check(lambda a: fn(a, axis=(0, len(shape) - 1), keepdims=keepdims), x)


def test_shape_ops():
    x = rand((2, 3, 4), 0)
    check(lambda a: ops.reshape(a, (4, 6)), x)
    check(lambda a: ops.transpose(a, (2, 0, 1)), x)
    check(lambda a: a.T, x)
    check(lambda a: a[1:, ::2, -1], x)
    check(lambda a: a[np.array([0, 1, 1]), :, np.array([3, 3, 0])], x)  # repeated indices
    check(lambda a, b: ops.concatenate([a, b, a], axis=1), x, rand((2, 5, 4), 1))
    check(lambda a, b: ops.stack([a, b], axis=2), x, rand((2, 3, 4), 2))


@SETTINGS
@given(st.integers(1, 6), st.integers(2, 5), st.integers(0, 99), st.booleans())
def test_cross_entropy(n, c, seed, ignore):
    t = np.random.default_rng(seed).integers(0, c, size=n)
    kw = {"ignore_index": int(t[0])} if ignore else {}
    check(lambda z: ops.cross_entropy(z, t, **kw), rand((n, c), seed))
    check(lambda z: ops.cross_entropy(z, t, reduction="sum", **kw), rand((n, c), seed))


def test_cross_entropy_value_matches_log_softmax():
    z = rand((5, 7), 3)
    t = np.array([0, 6, 2, 2, 1])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    want = -logp[np.arange(5), t].mean()
    got = ops.cross_entropy(z, t)
    assert abs(float(got.data) - want) < 1e-12
    kept = t != 2
    got = ops.cross_entropy(z, t, ignore_index=2)
    assert abs(float(got.data) + logp[np.arange(5), t][kept].mean()) < 1e-12


def test_bce_with_logits_matches_formula_and_gradcheck():
    x = rand((6,), 4) * 10  # large logits must not overflow
    y = np.array([0, 1, 1, 0, 1, 0.0])
    p = 1 / (1 + np.exp(-x))
    want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert abs(float(ops.binary_cross_entropy_with_logits(x, y).data) - want) < 1e-9
    check(lambda a: ops.binary_cross_entropy_with_logits(a, y), rand((6,), 5))


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 99))
def test_embedding_scatter_add(vocab, dim, seed):
    ids = np.random.default_rng(seed).integers(0, vocab, size=(3, 4))  # repeats are likely
    check(lambda w: ops.embedding(w, ids), rand((vocab, dim), seed))


def test_dropout_scales_and_masks():
    from minipar.core import backend
    backend.seed(1)
    x = np.ones((1000,))
    y = ops.dropout(x, p=0.25, training=True).data
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}
    assert 0.2 < (y == 0).mean() < 0.3
    assert ops.dropout(x, p=0.25, training=False).data is not None
    np.testing.assert_array_equal(ops.dropout(x, p=0.25, training=False).data, x)
    backend.seed(2)
    mask_seed = 2

    def f(a):
        backend.seed(mask_seed)  # same mask at every evaluation
        return ops.dropout(a, p=0.5)
    check(f, rand((4, 3), 0))


def test_gradcheck_reports_a_wrong_gradient():
    from minipar.autograd.tensor import Function

    class BadSquare(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            return g * ctx.saved[0]  # should be 2 a g

    res = gradcheck(lambda a: BadSquare.apply(a), [rand((3,), 0)])
    assert not res.ok and res.max_error > 0.1
    assert "FAILED" in str(res)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_keep_dtype(dtype):
    from minipar.autograd import Tensor
    x = Tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
    y = (x * 2.0 + 1).tanh().sigmoid().exp().log().sum()
    y.backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
