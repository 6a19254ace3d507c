"""Lowercase functions over the op classes, and the Tensor operators that call them.

``add(a, b)`` is ``Add.apply(a, b)``; ``a + b`` on tensors is the same call. Python numbers
and arrays mix freely with tensors (they are constants: no gradient flows to them).
"""

from __future__ import annotations

from minipar.autograd import functions as F
from minipar.autograd import functions_nn as N
from minipar.autograd.tensor import Tensor


def add(a, b):
    return F.Add.apply(a, b)


def sub(a, b):
    return F.Sub.apply(a, b)


def mul(a, b):
    return F.Mul.apply(a, b)


def div(a, b):
    return F.Div.apply(a, b)


def neg(a):
    return F.Neg.apply(a)


def pow(a, c):  # noqa: A001 - mirrors the operator's name
    return F.Pow.apply(a, c)


def matmul(a, b):
    return F.MatMul.apply(a, b)


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return F.Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims=False):
    return F.Mean.apply(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return F.Max.apply(a, axis=axis, keepdims=keepdims)


def reshape(a, shape):
    return F.Reshape.apply(a, tuple(shape))


def transpose(a, axes=None):
    return F.Transpose.apply(a, axes=axes)


def getitem(a, index):
    if isinstance(index, Tensor):
        index = index.data
    return F.GetItem.apply(a, index)


def concatenate(xs, axis=0):
    return F.Concatenate.apply(*xs, axis=axis)


def stack(xs, axis=0):
    return F.Stack.apply(*xs, axis=axis)


def exp(a):
    return N.Exp.apply(a)


def log(a):
    return N.Log.apply(a)


def tanh(a):
    return N.Tanh.apply(a)


def sigmoid(a):
    return N.Sigmoid.apply(a)


def relu(a):
    return N.Relu.apply(a)


def embedding(weight, idx):
    """Rows of ``weight`` picked by integer ``idx`` (any shape): out shape idx.shape + (D,)."""
    return N.Embedding.apply(weight, idx.data if isinstance(idx, Tensor) else idx)


def cross_entropy(logits, targets, ignore_index=None, reduction="mean"):
    """Fused log-softmax + NLL; ``logits`` (N, C), integer ``targets`` (N,)."""
    t = targets.data if isinstance(targets, Tensor) else targets
    return N.CrossEntropy.apply(logits, t, ignore_index=ignore_index, reduction=reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    t = targets.data if isinstance(targets, Tensor) else targets
    return N.BCEWithLogits.apply(logits, t, reduction=reduction)


def dropout(a, p=0.5, training=True):
    return N.Dropout.apply(a, p=p, training=training)


def _swap(fn):
    return lambda self, other: fn(other, self)


Tensor.__add__ = add
Tensor.__radd__ = _swap(add)
Tensor.__sub__ = sub
Tensor.__rsub__ = _swap(sub)
Tensor.__mul__ = mul
Tensor.__rmul__ = _swap(mul)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = _swap(div)
Tensor.__neg__ = neg
Tensor.__pow__ = pow
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = _swap(matmul)
Tensor.__getitem__ = getitem
Tensor.sum = sum
Tensor.mean = mean
Tensor.max = max
Tensor.exp = exp
Tensor.log = log
Tensor.tanh = tanh
Tensor.sigmoid = sigmoid
Tensor.relu = relu
Tensor.transpose = transpose
Tensor.T = property(lambda self: transpose(self))


def _reshape_method(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, shape)


Tensor.reshape = _reshape_method
