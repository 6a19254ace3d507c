"""A small reverse-mode autograd engine: ``Tensor``, one class per op, ``gradcheck``."""

from minipar.autograd.ops import (# noqa: F401 - re-exported API     add,
                                  binary_cross_entropy_with_logits, concatenate, cross_entropy,
                                  div, dropout, embedding, exp, getitem, log, matmul, max, mean,
                                  mul, neg, pow, relu, reshape, sigmoid, stack, sub, sum, tanh,
                                  transpose)
from minipar.autograd.tensor import Function, Tensor, is_grad_enabled, no_grad  # noqa: F401
