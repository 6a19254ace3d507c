"""One LSTM layer in plain NumPy, one step at a time, keeping what backpropagation needs.

The LSTM of docs/lstm.md written as plainly as NumPy allows (no autograd, no fusing):

    z_t = x_t W_ih + h_{t-1} W_hh + b                 gate blocks i, f, g, o along 4H
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);   g = tanh(z_g)
    c_t = f c_{t-1} + i g;   h_t = o tanh(c_t)

Task 3.1 (``minipar.assignments.lstm_backward``) starts from ``forward`` and its ``cache``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(x, h0, c0, w_ih, w_hh, b):
    """One LSTM layer over a sequence, batch first.

    x (B, T, D), h0 and c0 (B, H), w_ih (D, 4H), w_hh (H, 4H), b (4H,).
    Returns (out (B, T, H), h_n (B, H), c_n (B, H), cache), where cache holds the inputs
    under their names and, per step t, ``i f g o`` (T, B, H) after their nonlinearities,
    ``c`` and ``h`` (T+1, B, H) with c[0] = c0, h[0] = h0, and ``tc`` = tanh(c[1:]).
    """
    B, T, _ = x.shape
    H = w_hh.shape[0]
    gates = {k: np.empty((T, B, H)) for k in "ifgo"}
    c = np.empty((T + 1, B, H))
    h = np.empty((T + 1, B, H))
    c[0], h[0] = c0, h0
    for t in range(T):
        z = x[:, t] @ w_ih + h[t] @ w_hh + b
        i, f = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H])
        g, o = np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c[t + 1] = f * c[t] + i * g
        h[t + 1] = o * np.tanh(c[t + 1])
        for k, v in zip("ifgo", (i, f, g, o)):
            gates[k][t] = v
    cache = dict(x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b=b, c=c, h=h, tc=np.tanh(c[1:]),
                 **gates)
    return h[1:].transpose(1, 0, 2).copy(), h[T].copy(), c[T].copy(), cache
