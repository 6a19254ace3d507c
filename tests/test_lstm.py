"""LSTM: the fused layer against finite differences and against the composed cell.

The composed LSTM is built only from primitive ops whose gradients are checked elsewhere,
so "fused == composed to 1e-10 in float64, values and every gradient" pins the
hand-written BPTT; gradcheck on the fused layer checks it independently.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.core import backend
from minipar.autograd import Tensor, ops
from minipar.autograd.gradcheck import gradcheck
from minipar.nn.lstm import LSTM, lstm_forward
from minipar.nn.lstm_fused import lstm_layer


def _weights(rng, D, H, L, scale=0.5):
    out = []
    for layer in range(L):
        d = D if layer == 0 else H
        out.append((rng.normal(scale=scale, size=(d, 4 * H)),
                    rng.normal(scale=scale, size=(H, 4 * H)),
                    rng.normal(scale=scale, size=(4 * H,))))
    return out


def _flat(out, state):
    """One tensor holding out, h_n and c_n, so one gradcheck covers all three outputs."""
    h_n, c_n = state
    return ops.concatenate([ops.reshape(t, (-1,)) for t in (out, h_n, c_n)])


def test_gradcheck_fused_layer_all_inputs():
    rng = np.random.default_rng(0)
    B, T, D, H = 2, 3, 2, 3
    (w_ih, w_hh, b), = _weights(rng, D, H, 1)
    inputs = [rng.normal(size=(B, T, D)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
              w_ih, w_hh, b]

    def fn(x, h0, c0, wi, wh, bb):
        out, h_n, c_n = lstm_layer(x, h0, c0, wi, wh, bb)
        return _flat(out, (h_n, c_n))

    res = gradcheck(fn, inputs, eps=1e-6, tol=1e-7)
    assert res.ok, str(res)


@pytest.mark.parametrize("with_state", [True, False])
def test_gradcheck_fused_multilayer(with_state):
    rng = np.random.default_rng(1)
    B, T, D, H, L = 2, 3, 2, 2, 2
    flat_w = [w for layer in _weights(rng, D, H, L) for w in layer]
    state = [rng.normal(size=(L, B, H)), rng.normal(size=(L, B, H))] if with_state else []

    def fn(x, *rest):
        h0, c0 = (rest[0], rest[1]) if with_state else (None, None)
        ws = rest[2:] if with_state else rest
        weights = [tuple(ws[3 * k:3 * k + 3]) for k in range(L)]
        return _flat(*lstm_forward(x, h0, c0, weights, fused=True))

    res = gradcheck(fn, [rng.normal(size=(B, T, D)), *state, *flat_w], eps=1e-6, tol=1e-7)
    assert res.ok, str(res)


def _run_both(x, state, weights):
    """Values and gradients of fused and composed runs of the same LSTM, float64."""
    results = []
    rng = np.random.default_rng(123)
    for fused in (True, False):
        xt = Tensor(x, requires_grad=True)
        st_ = [Tensor(s, requires_grad=True) for s in state] if state else None
        ws = [tuple(Tensor(w, requires_grad=True) for w in layer) for layer in weights]
        h0, c0 = st_ if st_ else (None, None)
        out, (h_n, c_n) = lstm_forward(xt, h0, c0, ws, fused=fused)
        flat = _flat(out, (h_n, c_n))
        r = np.random.default_rng(7).normal(size=flat.shape)
        (flat * Tensor(r)).sum().backward()
        grads = [xt.grad] + ([s.grad for s in st_] if st_ else [])
        grads += [w.grad for layer in ws for w in layer]
        results.append([flat.data] + grads)
    del rng
    return results


@settings(max_examples=8, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 4),
       L=st.integers(1, 3), with_state=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_matches_composed(B, T, D, H, L, with_state, seed):
    rng = np.random.default_rng(seed)
    weights = _weights(rng, D, H, L)
    x = rng.normal(size=(B, T, D))
    state = [rng.normal(size=(L, B, H)) for _ in range(2)] if with_state else None
    fused, composed = _run_both(x, state, weights)
    assert len(fused) == len(composed)
    for a, b in zip(fused, composed):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_long_chain_2000_steps_no_recursion_error():
    """2,000 steps of the composed cell: a graph of ~30,000 nodes, far deeper than Python's
    recursion limit. Backward must run, and agree with the fused layer."""
    import sys

    rng = np.random.default_rng(3)
    T, D, H = 2000, 2, 2
    weights = _weights(rng, D, H, 1, scale=0.3)
    x = rng.normal(size=(1, T, D))
    assert T * 10 > sys.getrecursionlimit()
    grads = []
    for fused in (False, True):
        xt = Tensor(x, requires_grad=True)
        ws = [tuple(Tensor(w, requires_grad=True) for w in weights[0])]
        out, (h_n, c_n) = lstm_forward(xt, None, None, ws, fused=fused)
        (out.sum() + c_n.sum()).backward()
        grads.append([xt.grad] + [w.grad for w in ws[0]])
    for a, b in zip(*grads):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_module_parameters_layout_and_init():
    backend.seed(5)
    m = LSTM(3, 4, num_layers=2)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["weight_ih_l0", "weight_hh_l0", "bias_l0",
                     "weight_ih_l1", "weight_hh_l1", "bias_l1"]
    shapes = {n: p.shape for n, p in m.named_parameters()}
    assert shapes["weight_ih_l0"] == (3, 16) and shapes["weight_ih_l1"] == (4, 16)
    assert shapes["weight_hh_l0"] == (4, 16) and shapes["bias_l1"] == (16,)
    for n, p in m.named_parameters():
        assert p.dtype == np.float32
        data = p.data.copy()
        if n.startswith("bias"):
            assert np.all(data[4:8] == 1.0)            # forget-gate block
            data[4:8] = 0.0
        assert np.all(np.abs(data) <= 0.5)             # U(-1/sqrt(H), 1/sqrt(H)), H = 4
    plain = LSTM(3, 4, forget_bias=None)
    assert np.all(np.abs(plain.bias_l0.data) <= 0.5) and not np.all(plain.bias_l0.data[4:8] == 1)


def test_module_fused_and_composed_share_state_dict():
    backend.seed(0)
    a = LSTM(3, 5, num_layers=2, fused=True)
    b = LSTM(3, 5, num_layers=2, fused=False)
    b.load_state_dict(a.state_dict())
    x = Tensor(np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32))
    out_a, (h_a, c_a) = a(x)
    out_b, (h_b, c_b) = b(x)
    assert out_a.shape == (2, 6, 5) and h_a.shape == c_a.shape == (2, 2, 5)
    assert out_a.dtype == np.float32
    np.testing.assert_allclose(out_a.data, out_b.data, atol=1e-5)
    np.testing.assert_allclose(c_a.data, c_b.data, atol=1e-5)
    np.testing.assert_allclose(out_a.data[:, -1], h_a.data[-1], atol=0)


def test_module_truncated_bptt_state_and_errors():
    backend.seed(1)
    m = LSTM(2, 3)
    x = Tensor(np.ones((4, 5, 2), dtype=np.float32))
    out, state = m(x)
    detached = tuple(s.detach() for s in state)
    out2, _ = m(x, detached)
    out2.sum().backward()
    assert all(s.grad is None for s in detached)
    assert not np.allclose(out.data, out2.data)        # the state was used
    with pytest.raises(ValueError):
        m(x, (Tensor(np.zeros((1, 3, 3))), Tensor(np.zeros((1, 3, 3)))))
    with pytest.raises(ValueError):
        m(Tensor(np.ones((4, 5, 3), dtype=np.float32)))


def test_fused_layer_leaves_its_inputs_alone():
    """B = H = 1 makes transposes contiguous views: the layer must still copy, not write
    into the caller's state or the incoming gradients."""
    rng = np.random.default_rng(2)
    (w_ih, w_hh, b), = _weights(rng, 1, 1, 1)
    x, h0, c0 = rng.normal(size=(1, 3, 1)), rng.normal(size=(1, 1)), rng.normal(size=(1, 1))
    keep = [a.copy() for a in (x, h0, c0)]
    ts = [Tensor(a, requires_grad=True) for a in (x, h0, c0, w_ih, w_hh, b)]
    out, h_n, c_n = lstm_layer(*ts)
    dh, dc = np.ones((1, 1)), np.ones((1, 1))
    (out.sum() + (h_n * Tensor(dh)).sum() + (c_n * Tensor(dc)).sum()).backward()
    for a, k in zip((x, h0, c0), keep):
        np.testing.assert_array_equal(a, k)
    assert dh[0, 0] == 1.0 and dc[0, 0] == 1.0


def test_lstm_cell_module_is_one_step_of_lstm():
    from minipar.nn.lstm_cell import LSTMCell

    backend.seed(4)
    cell = LSTMCell(3, 4)
    m = LSTM(3, 4)
    m.load_state_dict({"weight_ih_l0": cell.weight_ih.data, "weight_hh_l0": cell.weight_hh.data,
                       "bias_l0": cell.bias.data})
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    h, c = cell(Tensor(x))
    out, (h_n, c_n) = m(Tensor(x[:, None, :]))
    np.testing.assert_allclose(h.data, out.data[:, 0], atol=1e-6)
    np.testing.assert_allclose(c.data, c_n.data[0], atol=1e-6)


def test_recycled_buffers_never_leak_between_calls():
    """The fused layer reuses its big buffers once a call's graph is gone: two graphs alive
    at once, a repeated backward (retain_graph) and B = 1 outputs must all stay correct."""
    rng = np.random.default_rng(6)
    (w_ih, w_hh, b), = _weights(rng, 2, 3, 1)
    xs = [rng.normal(size=(1, 4, 2)) for _ in range(3)]

    def run(x):
        ts = [Tensor(x, requires_grad=True)] + [Tensor(w, requires_grad=True)
                                                for w in (w_ih, w_hh, b)]
        out, h_n, c_n = lstm_layer(ts[0], np.zeros((1, 3)), np.zeros((1, 3)), *ts[1:])
        return ts, out

    ref, kept = [], []
    for x in xs:                                   # one at a time: reference values
        ts, out = run(x)
        out.sum().backward()                       # graph freed: buffers go back
        ref.append((out.data.copy(), [t.grad.copy() for t in ts]))
        kept.append(out)
    for out, (want_out, _) in zip(kept, ref):      # later calls did not write into it
        np.testing.assert_array_equal(out.data, want_out)
    live = [run(x) for x in xs]                    # three graphs alive together
    for (ts, out), (want_out, want_grads) in zip(reversed(live), reversed(ref)):
        np.testing.assert_array_equal(out.data, want_out)
        out.sum().backward(retain_graph=True)
        out.sum().backward()                       # second pass: grads double
        for t, g in zip(ts, want_grads):
            np.testing.assert_allclose(t.grad, 2 * g, rtol=1e-12, atol=1e-12)
