"""Bag-of-words logistic regression: the baseline that cannot see word order.

A sentence w_1 .. w_n becomes its word-frequency vector f (f_j = count of word j / n), and

    z = f . u + b = (1/n) sum_i u[w_i] + b,      P(y = 1) = sigmoid(z)

trained with the same binary cross-entropy as the LSTM classifier. The weights u are a
one-column embedding table, so padding costs nothing: the pads are masked out of the sum.

On the shuffled-word task (is this sentence in its original order, or a permutation of
it?) both classes have exactly the same bag of words, so this model can do no better than
chance, about 50%; the LSTM, which reads the words in order, can. That gap is the point of
the task.
"""

from __future__ import annotations

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd import ops
from minipar.nn import Module, Parameter
from minipar.nn.module import uniform


class BagOfWords(Module):
    """``forward(ids (B, T), lengths (B,)) -> logits (B,)``, from word frequencies only."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.weight = Parameter(uniform((vocab_size, 1), 0.01))
        self.bias = Parameter(xp.zeros((1,), dtype=backend.default_dtype()))

    def forward(self, ids, lengths):
        lengths = xp.asarray(lengths)
        steps = ids.shape[1]
        dtype = self.weight.dtype
        # mask[b, t] / n_b: 1/n on real tokens, 0 on pads -> a masked mean over each row
        mask = (xp.arange(steps)[None, :] < lengths[:, None]).astype(dtype)
        mask /= xp.maximum(lengths, 1)[:, None].astype(dtype)
        u = ops.reshape(ops.embedding(self.weight, ids), ids.shape)  # (B, T)
        return ops.sum(u * mask, axis=1) + self.bias

    def loss(self, ids, lengths, labels, reduction: str = "sum"):
        return ops.binary_cross_entropy_with_logits(self(ids, lengths), labels,
                                                    reduction=reduction)
