"""Task 3.1: backpropagation through time for one LSTM layer.

``forward`` (given, from minipar.nn.lstm_numpy) runs the layer step by step and returns
``(out, h_n, c_n, cache)``. With gates i, f, g, o (after their nonlinearities), per step

    z_t = x_t W_ih + h_{t-1} W_hh + b
    c_t = f c_{t-1} + i g,        h_t = o tanh(c_t)

Given the gradients of a loss with respect to the outputs -- dout (B, T, H) for every h_t,
dh_n and dc_n (B, H) for the final state -- return the gradients with respect to the
inputs: (dx, dh0, dc0, dw_ih, dw_hh, db), shaped like x, h0, c0, w_ih, w_hh, b.

Walk back from t = T-1 to 0, carrying dh (starts at dh_n) and dc (starts at dc_n):

    dh   = dout[:, t] + dh                 (the gradient reaching h_t)
    dc  += dh * o * (1 - tanh(c_t)^2)
    dz_i = dc * g * i (1 - i)             dz_f = dc * c_{t-1} * f (1 - f)
    dz_g = dc * i * (1 - g^2)             dz_o = dh * tanh(c_t) * o (1 - o)
    dz   = [dz_i dz_f dz_g dz_o]           (B, 4H)
    dx[:, t] = dz W_ih^T,   dW_ih += x_t^T dz,   dW_hh += h_{t-1}^T dz,   db += sum_B dz
    dh   = dz W_hh^T                       (flows to h_{t-1})
    dc   = dc * f                          (flows to c_{t-1})

and at the end dh0 = dh, dc0 = dc. The cache keys: x h0 c0 w_ih w_hh b; i f g o (T, B, H);
c and h (T+1, B, H) with c[0] = c0 and h[0] = h0; tc = tanh(c[1:]).

Grade it:  python -m minipar.check lstm_backward lstm_backward:backward
Read:      docs/lstm.md
"""
# ruff: noqa: F841 - the stub sets up names the finished code will use


import numpy as np

from minipar.nn.lstm_numpy import forward  # noqa: F401 - the forward this backward belongs to


def backward(cache: dict, dout: np.ndarray, dh_n: np.ndarray, dc_n: np.ndarray):
    """(dx, dh0, dc0, dw_ih, dw_hh, db) for the forward that filled ``cache``."""
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros_like(cache["b"])
    dh, dc = dh_n.copy(), dc_n.copy()
    # TODO: Task 3.1 -- the loop over t from T-1 down to 0 (see above).
    raise NotImplementedError("Task 3.1: write the LSTM backward pass (the TODO in "
                              "lstm_backward.py)")
