"""The composed (teaching) LSTM: a cell made only of primitive autograd ops, and a loop over
time and layers that calls it. Every step records ~15 small ops in the graph, so autograd
does backpropagation through time by itself; ``lstm_fused.py`` does the same arithmetic by
hand, one Function per layer, and the tests check that the two agree to 1e-10.

One step, gate blocks i, f, g, o along the 4H axis (see docs/lstm.md):

    z_t = x_t W_ih + h_{t-1} W_hh + b                    (B, 4H)
    i = sigmoid(z[:, 0:H])     f = sigmoid(z[:, H:2H])
    g = tanh(z[:, 2H:3H])      o = sigmoid(z[:, 3H:4H])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
"""

from __future__ import annotations

import math


from minipar.core.backend import xp
from minipar.autograd import ops
from minipar.nn.module import Module, Parameter, uniform


def lstm_cell(x, h, c, w_ih, w_hh, b):
    """One LSTM step from primitive ops: x (B, D), h and c (B, H) -> (h_t, c_t)."""
    H = w_hh.shape[0]
    z = ops.matmul(x, w_ih) + ops.matmul(h, w_hh) + b
    i = ops.sigmoid(z[:, 0:H])
    f = ops.sigmoid(z[:, H:2 * H])
    g = ops.tanh(z[:, 2 * H:3 * H])
    o = ops.sigmoid(z[:, 3 * H:4 * H])
    c_t = f * c + i * g
    h_t = o * ops.tanh(c_t)
    return h_t, c_t


class LSTMCell(Module):
    """A single LSTM step as a Module: ``cell(x_t, (h, c)) -> (h_t, c_t)``.

    Parameters ``weight_ih`` (D, 4H), ``weight_hh`` (H, 4H), ``bias`` (4H,), drawn from
    U(-1/sqrt(H), 1/sqrt(H)); the forget-gate block of the bias starts at ``forget_bias``.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(uniform((input_size, 4 * hidden_size), k))
        self.weight_hh = Parameter(uniform((hidden_size, 4 * hidden_size), k))
        self.bias = Parameter(uniform((4 * hidden_size,), k))
        self.bias.data[hidden_size:2 * hidden_size] = forget_bias

    def forward(self, x, state=None):
        if state is None:
            z = xp.zeros((x.shape[0], self.hidden_size), dtype=self.weight_hh.dtype)
            state = (z, z)
        h, c = state
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias)


def lstm_composed(x, h0, c0, weights):
    """Multi-layer LSTM over a sequence by looping ``lstm_cell`` over layers and time.

    x: Tensor (B, T, D); h0, c0: Tensors (L, B, H) or None (zeros); weights: a list of
    (w_ih, w_hh, b) per layer. Returns (out (B, T, H), (h_n, c_n)), h_n and c_n (L, B, H).
    Layer l > 0 reads the list of per-step outputs of layer l - 1 directly.
    """
    B, T, _ = x.shape
    H = weights[0][1].shape[0]
    zeros = xp.zeros((B, H), dtype=weights[0][1].dtype)
    steps = [x[:, t, :] for t in range(T)]
    h_last, c_last = [], []
    for layer, (w_ih, w_hh, b) in enumerate(weights):
        h = zeros if h0 is None else h0[layer]
        c = zeros if c0 is None else c0[layer]
        outs = []
        for x_t in steps:
            h, c = lstm_cell(x_t, h, c, w_ih, w_hh, b)
            outs.append(h)
        steps = outs
        h_last.append(h)
        c_last.append(c)
    out = ops.stack(steps, axis=1)
    return out, (ops.stack(h_last, axis=0), ops.stack(c_last, axis=0))
