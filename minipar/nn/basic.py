"""The basic layers: Linear, Embedding and Dropout."""

from __future__ import annotations

import math

from minipar.autograd import ops
from minipar.nn.module import Module, Parameter, uniform


class Linear(Module):
    """y = x W + b with W (in, out), b (out,); init U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(uniform((in_features, out_features), bound))
        self.bias = Parameter(uniform((out_features,), bound)) if bias else None

    def forward(self, x):
        y = ops.matmul(x, self.weight)
        return y + self.bias if self.bias is not None else y


class Embedding(Module):
    """Row lookup: ids (any shape) -> vectors (shape + (dim,)); init U(-0.1, 0.1)."""

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.weight = Parameter(uniform((num_embeddings, dim), 0.1))
        self.weight.sparse_grad = True  # its gradient has rows only for the ids used
    def forward(self, ids):
        return ops.embedding(self.weight, ids)


class Dropout(Module):
    """Zero each element with probability p while training; identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)
