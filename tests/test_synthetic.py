"""The Markov source: stationary distribution, entropy rate, generation; how close KN gets."""

import numpy as np
import pytest

from minipar.data.synthetic import MarkovSource
from minipar.core.errors import ConfigError
from minipar.models.ngram_lm import NGramModel


def test_two_state_chain_entropy_by_hand():
    # p(1|0) = a, p(0|1) = b: pi = (b, a) / (a + b), H = pi0 h(a) + pi1 h(b).
    a, b = 0.1, 0.4
    src = MarkovSource.from_table([[1 - a, a], [b, 1 - b]], order=1)
    assert np.allclose(src.stationary(), [b / (a + b), a / (a + b)])

    def h(p):
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))

    expected = (b * h(a) + a * h(b)) / (a + b)
    assert src.entropy_rate() == pytest.approx(expected, rel=1e-12)
    assert src.perplexity() == pytest.approx(np.exp(expected))


def test_stationary_is_invariant_for_order_two():
    src = MarkovSource(order=2, vocab_size=5, seed=3)
    pi, V = src.stationary(), 5
    nxt = np.zeros_like(pi)
    for s in range(V * V):
        for x in range(V):
            nxt[src.next_state(s, x)] += pi[s] * src.P[s, x]
    assert np.allclose(nxt, pi, atol=1e-14) and pi.sum() == pytest.approx(1.0)


def test_generation_is_seeded_and_matches_the_chain():
    src = MarkovSource(order=2, vocab_size=4, seed=0)
    x = src.generate(200_000, seed=1)
    assert np.array_equal(x, src.generate(200_000, seed=1))
    assert not np.array_equal(x[:100], src.generate(100, seed=2))
    assert x.min() >= 0 and x.max() < 4 and len(x) == 200_000
    states = x[:-2] * 4 + x[1:-1]
    counts = np.zeros((16, 4))
    np.add.at(counts, (states, x[2:]), 1)
    assert np.abs(counts / counts.sum(1, keepdims=True) - src.P).max() < 0.03


def test_bad_options():
    with pytest.raises(ConfigError):
        MarkovSource(order=0)
    with pytest.raises(ConfigError):
        MarkovSource(order=8, vocab_size=20)


def test_kn_gets_close_to_the_entropy_floor():
    # The benchmark (10^6 tokens) is within 1%; here 2e5 tokens and a looser bound.
    src = MarkovSource(order=2, vocab_size=20, seed=0)
    c = src.corpus(200_000, 0, 50_000, seed=0)
    model = NGramModel.fit(c.train, c.vocab, order=3, smoothing="kn")
    ppl = 10 ** -model.log10probs(c.test)[:-1].mean()
    assert 0.99 * src.perplexity() < ppl < 1.04 * src.perplexity()
