"""A synthetic source whose best possible perplexity is known exactly.

A Markov chain of order k over V symbols: the next symbol depends on the last k symbols
only. The state s = (x_{t-k}, ..., x_{t-1}) is coded in base V, s = sum_i x_{t-k+i} V^(k-1-i),
and the chain is a table P[s, x] = p(x | s) of shape (V^k, V), each row drawn from a
symmetric Dirichlet(concentration) with a seeded generator. All entries are positive, so the
chain is irreducible and aperiodic and has one stationary distribution pi over states:

    pi(s') = sum_{s, x : next(s, x) = s'} pi(s) P[s, x],     next(s, x) = (s V + x) mod V^k

The entropy rate (nats per symbol) is the stationary average of the conditional entropies,

    H = sum_s pi(s) * ( - sum_x P[s, x] ln P[s, x] ),

and exp(H) is the perplexity of the true model: no model, however trained, beats it in
expectation on text from this source. Tests and tutorials compare each model with it.

Generation runs ``ceil(n / segment)`` independent chains side by side (a loop over time
steps, vectorised over chains) and concatenates them. Each chain starts in a state drawn
from pi, so every position is exactly stationary; only the first k symbols of each segment
do not depend on the previous segment (n / segment junctions; 100 in 10^6 tokens).
"""

from __future__ import annotations

import numpy as np

from minipar.core.errors import ConfigError
from minipar.data.corpus import Corpus
from minipar.data.tokenize import SPECIALS, Vocab

__all__ = ["MarkovSource"]


class MarkovSource:
    """Seeded random order-``order`` Markov chain over ``vocab_size`` symbols 0..V-1."""

    def __init__(self, order: int = 2, vocab_size: int = 20, seed: int = 0,
                 concentration: float = 0.5, table: np.ndarray | None = None):
        if order < 1:
            raise ConfigError(f"Markov order must be at least 1, got {order}")
        if vocab_size < 2:
            raise ConfigError(f"Markov source needs at least 2 symbols, got {vocab_size}")
        if vocab_size ** order > 2_000_000:
            raise ConfigError(f"V^order = {vocab_size}^{order} states is too many (max 2e6)")
        self.order, self.V, self.seed = order, vocab_size, seed
        n_states = vocab_size ** order
        if table is None:
            if concentration <= 0:
                raise ConfigError(f"concentration must be positive, got {concentration}")
            rng = np.random.default_rng(seed)
            table = rng.dirichlet(np.full(vocab_size, concentration), size=n_states)
            # Dirichlet draws can underflow to exact zeros for small concentrations; a tiny
            # floor keeps every transition possible (and the chain ergodic).
            table = np.maximum(table, 1e-12)
        table = np.asarray(table, dtype=np.float64)
        if table.shape != (n_states, vocab_size) or (table < 0).any():
            raise ConfigError(f"the transition table must be non-negative, of shape "
                              f"{(n_states, vocab_size)}")
        self.P = table / table.sum(axis=1, keepdims=True)
        self._pi = None

    @classmethod
    def from_table(cls, table, order: int = 1) -> "MarkovSource":
        """A source with a given transition table (rows: states in base-V code)."""
        table = np.asarray(table, dtype=np.float64)
        return cls(order=order, vocab_size=table.shape[1], table=table)

    def next_state(self, state, symbol):
        """next(s, x) = (s V + x) mod V^k: drop the oldest symbol, append x."""
        return (state * self.V + symbol) % (self.V ** self.order)

    def stationary(self) -> np.ndarray:
        """pi over the V^k states: a direct solve for small chains, power iteration else."""
        if self._pi is not None:
            return self._pi
        n = self.V ** self.order
        src = np.repeat(np.arange(n), self.V)
        dst = self.next_state(src, np.tile(np.arange(self.V), n))
        w = self.P.ravel()
        if n <= 2000:
            T = np.zeros((n, n))
            np.add.at(T, (src, dst), w)
            # pi (T - I) = 0 with sum(pi) = 1: replace one equation by the normalisation.
            A = (T - np.eye(n)).T
            A[-1, :] = 1.0
            b = np.zeros(n)
            b[-1] = 1.0
            pi = np.linalg.solve(A, b)
        else:
            pi = np.full(n, 1.0 / n)
            for _ in range(100_000):
                new = np.bincount(dst, weights=pi[src] * w, minlength=n)
                if np.abs(new - pi).sum() < 1e-14:
                    pi = new
                    break
                pi = new
        pi = np.maximum(pi, 0.0)
        self._pi = pi / pi.sum()
        return self._pi

    def conditional_entropies(self) -> np.ndarray:
        """H(X | s) = -sum_x P[s, x] ln P[s, x] for every state, in nats."""
        P = self.P
        return -(P * np.log(np.where(P > 0, P, 1.0))).sum(axis=1)

    def entropy_rate(self) -> float:
        """H = sum_s pi(s) H(X | s), nats per symbol."""
        return float(self.stationary() @ self.conditional_entropies())

    def perplexity(self) -> float:
        """exp(H): the perplexity floor of any model on this source."""
        return float(np.exp(self.entropy_rate()))

    def generate(self, n: int, seed: int = 0, segment: int = 10_000) -> np.ndarray:
        """``n`` symbols (int64 in 0..V-1) from ``ceil(n / segment)`` stationary chains."""
        if n < 0 or segment < 1:
            raise ConfigError(f"need n >= 0 and segment >= 1, got n={n}, segment={segment}")
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, seed])
        chains = -(-n // segment)
        steps = -(-n // chains)
        cdf = np.cumsum(self.P, axis=1)
        cdf[:, -1] = 1.0  # rounding must never leave u above the last edge
        state = rng.choice(len(self.P), size=chains, p=self.stationary())
        # The first k symbols of a chain are the digits of its initial state.
        digits = [(state // self.V ** (self.order - 1 - i)) % self.V for i in range(self.order)]
        out = np.empty((chains, steps + self.order), dtype=np.int64)
        out[:, : self.order] = np.stack(digits, axis=1)
        u = rng.random((steps, chains))
        for t in range(steps):
            x = (cdf[state] < u[t][:, None]).sum(axis=1)
            out[:, self.order + t] = x
            state = self.next_state(state, x)
        return out[:, : steps + self.order].reshape(-1)[:n]

    # ------------------------------------------------------------------ as a corpus
    def vocab(self) -> Vocab:
        """A word vocabulary whose tokens 3..V+2 are the symbols "a0", "a1", ..."""
        return Vocab(list(SPECIALS) + [f"a{i}" for i in range(self.V)], kind="word")

    def corpus(self, n_train: int, n_valid: int = 0, n_test: int = 0, seed: int = 0) -> Corpus:
        """Independent train / valid / test streams as vocabulary ids (symbol + 3), each one
        long sentence closed by a single </s>."""
        def stream(n, s):
            return np.append(self.generate(n, seed=s) + len(SPECIALS), 2)

        names = {"train": f"markov(order={self.order}, V={self.V}, seed={self.seed})"}
        return Corpus(stream(n_train, 3 * seed), stream(n_valid, 3 * seed + 1),
                      stream(n_test, 3 * seed + 2), self.vocab(), names)


def heavy_tail(n: int, seed: int = 0, shape: float = 1.5) -> list[float]:
    """n task costs from a Pareto distribution (shape 1.5: a few tasks dwarf the rest), so
    block and round-robin plans end up uneven. Same seed, same costs, on every rank."""
    rng = np.random.default_rng(seed)
    return [round(float(x), 3) for x in 1.0 + rng.pareto(shape, size=n)]
