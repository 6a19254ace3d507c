"""An LSTM language model trained with truncated backpropagation through time.

    e_t          = E[w_t]                               embedding, V -> D
    h_t, c_t     = LSTM(e_t, h_{t-1}, c_{t-1})          one or more layers, D -> H
    logits_t     = h_t U + b                            decoder, H -> V
    P(w_{t+1} | w_1..w_t) = softmax(logits_t)

With ``tie_weights`` the decoder reuses the embedding matrix, U = E^T (Press & Wolf 2017,
Inan et al. 2017): V*H fewer parameters and usually a lower perplexity. It needs D == H.
``dropout`` (Zaremba et al. 2014 style) is applied to the embeddings and to the LSTM's
output before the decoder, not between stacked layers (the fused LSTM runs all its layers
in one op).

Truncated BPTT. A long token stream is cut into windows of T tokens; the model takes the
state (h, c) left by the previous window and returns the new one, so information flows
forward across windows, while gradients stop at the window boundary because the caller
detaches the state (``detach_state``) before feeding it back. Without the detach, the graph
would grow with every window and backward would run through the whole history.
"""

from __future__ import annotations

from minipar.autograd import Tensor, ops
from minipar.core.errors import ConfigError
from minipar.nn import Dropout, Embedding, Linear, Module, Parameter
from minipar.nn.lstm import LSTM
from minipar.nn.module import uniform


def detach_state(state):
    """(h, c) with the same values and no graph: the truncation point of truncated BPTT."""
    if state is None:
        return None
    return tuple(s.detach() if isinstance(s, Tensor) else Tensor(s) for s in state)


class LSTMLM(Module):
    """Embedding -> LSTM (``num_layers``) -> linear decoder over the vocabulary.

    Embeddings are drawn from U(-a, a), a = sqrt(3) * ``embed_std`` (default below).

    ``forward(ids (B, T), state=None) -> (logits (B, T, V), (h_n, c_n))``, with state
    tensors of shape (L, B, H). ``state=None`` starts from zeros.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 128,
                 num_layers: int = 1, tie_weights: bool = False, dropout: float = 0.0,
                 fused: bool = True, embed_std: float | None = None):
        super().__init__()
        if tie_weights and embed_dim != hidden:
            raise ConfigError(f"tied weights need embed_dim == hidden, got {embed_dim} and "
                              f"{hidden}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden, num_layers
        self.tie_weights = tie_weights
        self.embed = Embedding(vocab_size, embed_dim)
        if embed_std is None:
            # untied: std 1 (PyTorch's N(0, 1)); with the layer's U(-0.1, 0.1) one epoch of
            # the Markov benchmark ended at 1.081x the floor instead of 1.058x
            # (docs/benchmarks.md). Tied: E is also the decoder, so it gets a decoder's
            # scale, U(-1/sqrt(H), 1/sqrt(H)).
            embed_std = 1.0 / (3 * hidden) ** 0.5 if tie_weights else 1.0
        self.embed.weight = Parameter(uniform((vocab_size, embed_dim), 3 ** 0.5 * embed_std))
        # rows only for the ids used, unless the decoder (tied) reads every row
        self.embed.weight.sparse_grad = not tie_weights
        self.lstm = LSTM(embed_dim, hidden, num_layers=num_layers, fused=fused)
        if tie_weights:
            # the decoder weight is E^T; only the bias is new
            self.decoder_bias = Parameter(uniform((vocab_size,), 1.0 / hidden ** 0.5))
        else:
            self.decoder = Linear(hidden, vocab_size)
        self.drop = Dropout(dropout)

    def forward(self, ids, state=None):
        """Integer ids (B, T) and optional (h0, c0) -> (logits (B, T, V), (h_n, c_n))."""
        batch, steps = ids.shape
        x = self.drop(self.embed(ids))
        out, new_state = self.lstm(x, state)
        # one (B*T, H) @ (H, V) GEMM instead of a batched 3-D matmul
        h = self.drop(ops.reshape(out, (batch * steps, self.hidden_size)))
        if self.tie_weights:
            logits = ops.matmul(h, ops.transpose(self.embed.weight)) + self.decoder_bias
        else:
            logits = self.decoder(h)
        return ops.reshape(logits, (batch, steps, self.vocab_size)), new_state

    def loss(self, ids, targets, state=None, reduction: str = "sum"):
        """Cross-entropy of ``targets`` (B, T) (the ids shifted by one) -> (loss, new state).

        ``reduction="sum"`` returns the total over the B*T tokens, in nats."""
        logits, new_state = self(ids, state)
        flat = ops.reshape(logits, (-1, self.vocab_size))
        return ops.cross_entropy(flat, targets.reshape(-1), reduction=reduction), new_state
