"""Models: shapes, gradients by finite differences (float64, tiny sizes), sampling."""

from __future__ import annotations

import numpy as np
import pytest

from minipar.core import backend
from minipar.autograd import Tensor
from minipar.autograd.gradcheck import gradcheck
from minipar.core.errors import ConfigError
from minipar.models.bow import BagOfWords
from minipar.models.classifier import LSTMClassifier, accuracy
from minipar.models.lstm_lm import LSTMLM, detach_state
from minipar.models.mlp_lm import MLPLM
from minipar.models.sample import MLPStepper, ProbStepper, draw, generate, sample_ids

V = 7


def _ids(shape, seed=0, high=V):
    return np.random.default_rng(seed).integers(0, high, size=shape)


def _set(model, name, value):
    """Put ``value`` where parameter ``name`` (dotted) lives, bypassing registration."""
    *path, attr = name.split(".")
    owner = model
    for part in path:
        owner = getattr(owner, part)
    object.__setattr__(owner, attr, value)


def param_gradcheck(model, loss_fn):
    """gradcheck of ``loss_fn(model)`` with respect to every parameter of ``model``."""
    names = [n for n, _ in model.named_parameters()]
    originals = model.parameters()

    def fn(*ts):
        for name, t in zip(names, ts):
            _set(model, name, t)
        return loss_fn(model)

    try:
        # the swap must really route every parameter through the loss, or the check
        # would compare zeros with zeros
        probes = [Tensor(p.data, requires_grad=True) for p in originals]
        fn(*probes).backward()
        unused = [n for n, t in zip(names, probes) if t.grad is None or not t.grad.any()]
        assert not unused, f"no gradient reaches {unused}"
        return gradcheck(fn, [p.data for p in originals])
    finally:
        for name, p in zip(names, originals):
            _set(model, name, p)


def _float64_model(cls, *args, **kw):
    backend.seed(1)
    with backend.dtype_scope("float64"):
        return cls(*args, **kw)


# --- shapes -------------------------------------------------------------------------------
def test_mlp_lm_shapes_and_concatenation_order():
    backend.seed(0)
    m = MLPLM(V, context=3, embed_dim=4, hidden=5)
    ctx = _ids((6, 3))
    assert m(ctx).shape == (6, V)
    assert m.num_parameters() == V * 4 + (12 * 5 + 5) + (5 * V + V)
    loss = m.loss(ctx, _ids((6,), 1))
    assert loss.shape == ()
    # swapping two context positions must change the output: the order is kept
    assert not np.allclose(m(ctx).data, m(ctx[:, ::-1].copy()).data)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_lm_shapes_and_state(layers):
    backend.seed(0)
    m = LSTMLM(V, embed_dim=4, hidden=6, num_layers=layers)
    ids = _ids((3, 5))
    logits, (h, c) = m(ids)
    assert logits.shape == (3, 5, V)
    assert h.shape == c.shape == (layers, 3, 6)
    loss, state = m.loss(ids, _ids((3, 5), 1), detach_state((h, c)))
    assert loss.shape == () and state[0].shape == (layers, 3, 6)
    assert detach_state(state)[0].is_leaf and not detach_state(state)[0].requires_grad


def test_lstm_lm_two_windows_equal_one_long_window():
    """Carrying the state across windows computes the same outputs as one long window."""
    backend.seed(0)
    with backend.dtype_scope("float64"):
        m = LSTMLM(V, embed_dim=4, hidden=5)
    ids = _ids((2, 8))
    whole, _ = m(ids)
    first, state = m(ids[:, :5])
    second, _ = m(ids[:, 5:], detach_state(state))
    np.testing.assert_allclose(np.concatenate([first.data, second.data], axis=1), whole.data,
                               rtol=1e-12, atol=1e-12)


def test_tied_weights_share_the_embedding():
    backend.seed(0)
    tied = LSTMLM(V, embed_dim=6, hidden=6, tie_weights=True)
    untied = LSTMLM(V, embed_dim=6, hidden=6)
    assert untied.num_parameters() - tied.num_parameters() == 6 * V
    assert "decoder.weight" not in dict(tied.named_parameters())
    with pytest.raises(ConfigError):
        LSTMLM(V, embed_dim=4, hidden=6, tie_weights=True)


def test_classifier_reads_the_last_real_token():
    backend.seed(0)
    m = LSTMClassifier(V, embed_dim=4, hidden=5)
    ids = _ids((3, 6))
    lengths = np.array([6, 2, 4])
    z = m(ids, lengths)
    assert z.shape == (3,)
    garbage = ids.copy()
    for row, n in enumerate(lengths):
        garbage[row, n:] = (garbage[row, n:] + 3) % V  # change only the padding
    np.testing.assert_allclose(m(garbage, lengths).data, z.data, rtol=1e-6)
    alone = m(ids[1:2, :2], lengths[1:2])  # a row alone, unpadded, gives the same logit
    np.testing.assert_allclose(alone.data, z.data[1:2], rtol=1e-5)


def test_bag_of_words_ignores_order_and_padding():
    backend.seed(0)
    m = BagOfWords(V)
    ids = _ids((2, 5))
    lengths = np.array([5, 3])
    z = m(ids, lengths)
    shuffled = ids.copy()
    shuffled[0] = shuffled[0, ::-1]
    shuffled[1, :3] = shuffled[1, :3][::-1]
    shuffled[1, 3:] = 0
    np.testing.assert_allclose(m(shuffled, lengths).data, z.data, rtol=1e-6)


def test_accuracy():
    assert accuracy(np.array([2.0, -1.0, 0.5, -3.0]), np.array([1, 0, 0, 0])) == 0.75


# --- gradients (float64, central differences) ---------------------------------------------
def test_gradcheck_mlp_lm():
    m = _float64_model(MLPLM, V, context=2, embed_dim=3, hidden=4)
    ctx, tgt = _ids((5, 2)), _ids((5,), 1)
    res = param_gradcheck(m, lambda mod: mod.loss(ctx, tgt))
    assert res.ok, str(res)


@pytest.mark.parametrize("tie", [False, True])
def test_gradcheck_lstm_lm(tie):
    m = _float64_model(LSTMLM, V, embed_dim=4, hidden=4, tie_weights=tie)
    ids, tgt = _ids((2, 3)), _ids((2, 3), 1)
    rng = np.random.default_rng(2)
    h0 = Tensor(rng.normal(size=(1, 2, 4)) * 0.5)
    c0 = Tensor(rng.normal(size=(1, 2, 4)) * 0.5)
    res = param_gradcheck(m, lambda mod: mod.loss(ids, tgt, (h0, c0))[0])
    assert res.ok, str(res)


def test_gradcheck_lstm_lm_two_layers_through_the_state():
    """Gradients with respect to the incoming state (h0, c0) too (not only parameters)."""
    m = _float64_model(LSTMLM, 5, embed_dim=3, hidden=3, num_layers=2)
    ids, tgt = _ids((2, 3), high=5), _ids((2, 3), 1, high=5)
    rng = np.random.default_rng(3)
    state = [rng.normal(size=(2, 2, 3)) * 0.5 for _ in range(2)]
    res = gradcheck(lambda h, c: m.loss(ids, tgt, (h, c))[0], state)
    assert res.ok, str(res)


def test_gradcheck_classifier():
    m = _float64_model(LSTMClassifier, V, embed_dim=3, hidden=4)
    ids, lengths, y = _ids((3, 4)), np.array([4, 1, 3]), np.array([1, 0, 1])
    res = param_gradcheck(m, lambda mod: mod.loss(ids, lengths, y))
    assert res.ok, str(res)


def test_gradcheck_bag_of_words():
    m = _float64_model(BagOfWords, V)
    ids, lengths, y = _ids((3, 4)), np.array([4, 1, 3]), np.array([1, 0, 1])
    res = param_gradcheck(m, lambda mod: mod.loss(ids, lengths, y))
    assert res.ok, str(res)


# --- sampling -----------------------------------------------------------------------------
def test_draw_follows_the_tempered_softmax():
    scores = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    for tau in (1.0, 0.5, 2.0):
        counts = np.bincount([draw(scores, tau, rng) for _ in range(20000)], minlength=4)
        p = np.exp(scores / tau)
        p /= p.sum()
        np.testing.assert_allclose(counts / counts.sum(), p, atol=0.015)


def test_draw_at_zero_temperature_is_the_argmax():
    scores = np.array([0.1, 2.0, 1.9, -5.0])
    rng = np.random.default_rng(0)
    assert {draw(scores, 0.0, rng) for _ in range(50)} == {1}
    assert {draw(scores, 1e-4, rng) for _ in range(50)} == {1}


def test_sampling_is_deterministic_for_a_seed():
    backend.seed(0)
    lstm = LSTMLM(V, embed_dim=4, hidden=6, dropout=0.3)
    mlp = MLPLM(V, context=2, embed_dim=3, hidden=4)
    for model, prompt in ((lstm, [1, 2]), (mlp, [])):
        a = sample_ids(model, prompt, 30, temperature=1.0, seed=5)
        b = sample_ids(model, prompt, 30, temperature=1.0, seed=5)
        c = sample_ids(model, prompt, 30, temperature=1.0, seed=6)
        assert a == b and a != c and len(a) == 30
        assert all(0 <= t < V for t in a)
    assert lstm.training  # restored after sampling in eval mode


def test_greedy_sampling_matches_stepwise_argmax():
    backend.seed(0)
    mlp = MLPLM(V, context=2, embed_dim=3, hidden=4)
    tokens = sample_ids(mlp, [3], 6, temperature=0.0)
    history = [0, 0, 3]
    for t in tokens:
        assert t == int(np.argmax(mlp(np.array([history[-2:]])).data[0]))
        history.append(t)
    assert sample_ids(mlp, [3], 6, temperature=1e-6, seed=9) == tokens
    lstm = LSTMLM(V, embed_dim=4, hidden=6)
    ids = [2] + sample_ids(lstm, [2], 5, temperature=0.0)
    logits, _ = lstm(np.array([ids]))
    assert ids[1:] == [int(k) for k in np.argmax(logits.data[0, :-1], axis=-1)]


def test_banned_ids_are_never_drawn():
    backend.seed(0)
    mlp = MLPLM(V, context=2, embed_dim=3, hidden=4)
    greedy = sample_ids(mlp, [], 20, temperature=0.0)
    favourite = max(set(greedy), key=greedy.count)
    for tau in (0.0, 1.0, 5.0):
        out = sample_ids(mlp, [], 200, temperature=tau, seed=1, banned=[favourite, 0])
        assert favourite not in out and 0 not in out


def test_prob_stepper_wraps_a_distribution():
    def bigram(history):  # a deterministic cycle 0 -> 1 -> 2 -> 0
        p = np.zeros(3)
        p[(history[-1] + 1) % 3] = 1.0
        return p

    assert generate(ProbStepper(bigram, [0]), 5, temperature=1.0, seed=0) == [1, 2, 0, 1, 2]
    assert MLPStepper(MLPLM(V, context=3), [4], pad_id=6).history == [6, 6, 6, 4]


def test_count_ngram_through_the_common_interface():
    from minipar.data import Vocab
    from minipar.models.ngram_lm import NGramModel

    text = "a b c\nd e f\n" * 10
    vocab = Vocab.build(text, "word")
    model = NGramModel.fit(vocab.encode(text), vocab, order=3, smoothing="ml")
    out = sample_ids(model, [], 12, temperature=1.0, seed=0, banned=[vocab.bos_id])
    assert out == sample_ids(model, [], 12, temperature=1.0, seed=0, banned=[vocab.bos_id])
    lines = vocab.decode(out).split("\n")
    assert all(line in ("a b c", "d e f") for line in lines[:-1])  # only seen sentences
