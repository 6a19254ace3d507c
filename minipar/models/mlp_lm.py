"""The neural N-gram language model of Bengio, Ducharme, Vincent and Jauvin (2003).

The next token is predicted from the previous n-1 tokens w_{t-n+1} .. w_{t-1}:

    x      = [C(w_{t-n+1}); ...; C(w_{t-1})]       concatenated embeddings, (n-1) * D values
    h      = tanh(x H + d)                          hidden layer, (n-1) D -> K
    logits = h U + b                                K -> V
    P(w_t = j | context) = softmax(logits)_j

The paper's optional direct connections (x W added to the logits) are left out: they are
not needed to reach a source's entropy rate and one matrix less is easier to read. The
softmax is not computed here: the loss uses the fused log-softmax + NLL
(``cross_entropy``), which is cheaper and never takes the log of an underflowed 0.

Shapes: ``forward(ctx)`` takes integer ids (B, n-1), oldest token first, and returns
logits (B, V).
"""

from __future__ import annotations

from minipar.autograd import ops
from minipar.nn import Dropout, Embedding, Linear, Module, Parameter
from minipar.nn.module import uniform


class MLPLM(Module):
    """Neural N-gram LM: embed the n-1 context tokens, concatenate, tanh layer, logits.

    ``vocab_size`` V, ``context`` n-1 (the model is an ``context + 1``-gram), ``embed_dim``
    D, ``hidden`` K. ``dropout`` applies to the concatenated embeddings and to h while
    training. Embeddings are drawn from U(-a, a) with a = sqrt(3) * ``embed_std``.
    """

    def __init__(self, vocab_size: int, context: int, embed_dim: int = 32, hidden: int = 128,
                 dropout: float = 0.0, embed_std: float = 1.0):
        super().__init__()
        if context < 1:
            raise ValueError(f"context must be at least 1 token, got {context}")
        self.vocab_size, self.context = vocab_size, context
        self.embed = Embedding(vocab_size, embed_dim)
        # Embeddings start with standard deviation embed_std (as PyTorch's N(0, 1)), not the
        # layer's U(-0.1, 0.1): with small inputs the tanh units are nearly linear, a sum of
        # per-token terms, and learning how tokens interact stalls: one epoch of the Markov
        # benchmark ended at 1.76x the floor's perplexity instead of 1.03x
        # (docs/benchmarks.md, "Neural models on the synthetic source").
        self.embed.weight = Parameter(uniform((vocab_size, embed_dim), 3 ** 0.5 * embed_std))
        self.hidden = Linear(context * embed_dim, hidden)
        self.out = Linear(hidden, vocab_size)
        self.drop = Dropout(dropout)

    def forward(self, ctx):
        """Integer ids (B, n-1) -> logits (B, V)."""
        batch = ctx.shape[0]
        e = self.embed(ctx)  # (B, n-1, D)
        # concatenating the n-1 embeddings in order is exactly a reshape of (B, n-1, D)
        x = self.drop(ops.reshape(e, (batch, -1)))
        h = self.drop(ops.tanh(self.hidden(x)))
        return self.out(h)

    def loss(self, ctx, targets, reduction: str = "sum"):
        """Cross-entropy of the next tokens ``targets`` (B,): sum (default) or mean, in nats."""
        return ops.cross_entropy(self(ctx), targets, reduction=reduction)
