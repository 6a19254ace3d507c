"""Task 3.1, the LSTM backward pass: the plain forward it starts from, and its grader.

The forward below is the LSTM of docs/lstm.md written as plainly as NumPy allows (one step
at a time, no tricks) and keeps everything the backward pass needs in ``cache``:

    z_t = x_t W_ih + h_{t-1} W_hh + b                 gate blocks i, f, g, o along 4H
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);   g = tanh(z_g)
    c_t = f c_{t-1} + i g;   h_t = o tanh(c_t)

The student writes ``backward(cache, dout, dh_n, dc_n) -> (dx, dh0, dc0, dw_ih, dw_hh, db)``;
the grader compares it with minipar's fused layer (``minipar.nn.lstm_fused.LSTMLayer``,
through autograd), in float64, on several shapes.
"""

from __future__ import annotations

import numpy as np

from minipar.grading.harness import call, close
from minipar.core import backend
from minipar.autograd import Tensor
from minipar.nn.lstm_fused import LSTMLayer
from minipar.nn.lstm_numpy import forward

NAMES = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db")


def reference_backward(cache, dout, dh_n, dc_n):
    """minipar's own answer: the fused layer's hand-written BPTT, reached through autograd
    with L = sum(out*dout) + sum(h_n*dh_n) + sum(c_n*dc_n)."""

    with backend.dtype_scope("float64"):
        ts = [Tensor(np.array(cache[k], dtype=np.float64), requires_grad=True)
              for k in ("x", "h0", "c0", "w_ih", "w_hh", "b")]
        out, h_n, c_n = LSTMLayer.apply(*ts)
        loss = (out * Tensor(dout)).sum() + (h_n * Tensor(dh_n)).sum() + \
            (c_n * Tensor(dc_n)).sum()
        loss.backward()
        return tuple(backend.to_numpy(t.grad) for t in ts)


def make_case(B, T, D, H, seed, only_final=False):
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(B, T, D)), rng.normal(size=(B, H)) * 0.5,
            rng.normal(size=(B, H)) * 0.5, rng.normal(size=(D, 4 * H)) * 0.5,
            rng.normal(size=(H, 4 * H)) * 0.5, rng.normal(size=4 * H) * 0.5)
    _, _, _, cache = forward(*args)
    dout = np.zeros((B, T, H)) if only_final else rng.normal(size=(B, T, H))
    return cache, dout, rng.normal(size=(B, H)), rng.normal(size=(B, H))


def _gate_note(name, got, want, H):
    """Which gate blocks (i, f, g, o columns of the 4H axis) hold the errors."""
    if name not in ("dw_ih", "dw_hh", "db"):
        return ""
    bad = np.abs(got - want).reshape(-1, 4, H).max(axis=(0, 2)) > 1e-7
    blocks = [g for g, b in zip("ifgo", bad) if b]
    return f"; wrong in the {', '.join(blocks)} gate block(s)" if 0 < len(blocks) < 4 else ""


def _time_note(name, got, want):
    """dx right at the last step but wrong before: the recurrence is missing or wrong."""
    if name != "dx" or got.shape[1] < 2:
        return ""
    per_t = np.abs(got - want).max(axis=(0, 2)) > 1e-7
    if not per_t[-1] and per_t[:-1].any():
        return ("; right at the last step, wrong before it: check what flows back to step t-1 "
                "(dh_{t-1} += dz_t W_hh^T, dc_{t-1} = dc_t * f_t)")
    return ""


def compare(result, want, H) -> str | None:
    """None if all six gradients match; else which are wrong, the first in detail, and
    where the errors sit (gate blocks, time steps)."""
    if not isinstance(result, (tuple, list)) or len(result) != 6:
        return f"expected a tuple of six arrays {NAMES}, got {type(result).__name__}"
    wrong, first, notes = [], None, []
    for name, g, w in zip(NAMES, result, want):
        g = np.asarray(g, dtype=np.float64) if g is not None else None
        if g is None or g.shape != w.shape:
            return f"{name} has shape {None if g is None else g.shape}, expected {w.shape}"
        problem = close(g, w, name, rtol=1e-8)
        if problem:
            wrong.append(name)
            first = first or problem
            notes += [n for n in (_gate_note(name, g, w, H), _time_note(name, g, w))
                      if n and n not in notes]
    if not wrong:
        return None
    return f"wrong: {', '.join(wrong)}; {first}" + "".join(notes[:2])


CASES = [
    ("one step (no recurrence)", dict(B=2, T=1, D=3, H=2, seed=1), False),
    ("several steps", dict(B=2, T=5, D=3, H=4, seed=2), False),
    ("gradient from h_n and c_n only", dict(B=3, T=4, D=2, H=3, seed=3), True),
    ("batch of one, longer sequence", dict(B=1, T=9, D=5, H=3, seed=4), False),
]


def grade_lstm_backward(fn, report, timeout):
    for title, kw, only_final in CASES:
        cache, dout, dh_n, dc_n = make_case(**kw, only_final=only_final)
        want = reference_backward(cache, dout, dh_n, dc_n)
        copy = {k: v.copy() for k, v in cache.items()}
        result, err = call(fn, (copy, dout.copy(), dh_n.copy(), dc_n.copy()), timeout)
        shape = f"B={kw['B']} T={kw['T']} D={kw['D']} H={kw['H']}"
        if err:
            report.add(title, False, f"{shape}: {err}")
            continue
        problem = compare(result, want, kw["H"])
        report.add(title, problem is None, f"{shape}: {problem}" if problem else shape)
