"""An LSTM binary text classifier: Embedding -> LSTM -> Dense(1) -> sigmoid.

For a sentence w_1 .. w_n (padded on the right to the batch's longest length T):

    h_1 .. h_T  = LSTM(E[w_1], ..., E[w_T])
    z           = h_n . u + b                 the output at the LAST REAL token, not at T
    P(y = 1)    = sigmoid(z)
    loss        = BCE(z, y) = max(z, 0) - z y + log(1 + e^-|z|)     (on the logit, stable)

Reading h_n rather than h_T is what makes padding harmless: the LSTM runs left to right, so
h_n depends only on w_1..w_n, whatever pads follow. Each row of the batch is computed
independently, which is also why a batch can be split by rows across ranks.
"""

from __future__ import annotations

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd import Tensor, ops
from minipar.nn import Dropout, Embedding, Linear, Module
from minipar.nn.lstm import LSTM


class LSTMClassifier(Module):
    """``forward(ids (B, T), lengths (B,)) -> logits (B,)``; P(y=1) = sigmoid(logit).

    ``dropout`` (training only) applies to the embeddings and to h_n: with a few thousand
    sentences the LSTM otherwise learns the training set by heart."""

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 64,
                 num_layers: int = 1, dropout: float = 0.0, fused: bool = True):
        super().__init__()
        self.embed = Embedding(vocab_size, embed_dim)
        self.lstm = LSTM(embed_dim, hidden, num_layers=num_layers, fused=fused)
        self.dense = Linear(hidden, 1)
        self.drop = Dropout(dropout)

    def forward(self, ids, lengths):
        """Padded ids (B, T) and true lengths (B,), each >= 1 -> logits (B,)."""
        out, _ = self.lstm(self.drop(self.embed(ids)))  # (B, T, H)
        rows = xp.arange(out.shape[0])
        last = xp.asarray(lengths) - 1
        h = ops.getitem(out, (rows, last))  # (B, H): h at each row's last real token
        return ops.reshape(self.dense(self.drop(h)), (-1,))

    def loss(self, ids, lengths, labels, reduction: str = "sum"):
        """Binary cross-entropy on the logits against 0/1 ``labels`` (B,)."""
        return ops.binary_cross_entropy_with_logits(self(ids, lengths), labels,
                                                    reduction=reduction)


def accuracy(logits, labels) -> float:
    """Fraction of rows where (logit > 0) == label, i.e. P(y=1) > 1/2 is predicted as 1."""
    if isinstance(logits, Tensor):
        logits = logits.data
    pred = backend.to_numpy(logits) > 0
    return float((pred == (backend.to_numpy(labels) > 0.5)).mean())
