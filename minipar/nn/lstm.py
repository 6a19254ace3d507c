"""``LSTM``: a multi-layer, batch-first LSTM Module with two interchangeable implementations.

    lstm = LSTM(input_size=64, hidden_size=256, num_layers=2)        # fused (default)
    out, (h_n, c_n) = lstm(x)                     # x (B, T, D) -> out (B, T, H)
    out, (h_n, c_n) = lstm(x, (h_n.detach(), c_n.detach()))        # truncated BPTT

``fused=True`` runs one hand-written Function per layer (``lstm_fused.LSTMLayer``: whole-
sequence forward and BPTT backward); ``fused=False`` loops the composed cell of primitive ops
(``lstm_cell.lstm_composed``). Both read the same parameters, so a state_dict moves freely
between them and the results agree to rounding.

Parameters of layer l (input_size_0 = input_size, input_size_l = hidden_size for l > 0):

    weight_ih_l{l}  (input_size_l, 4H)    weight_hh_l{l}  (H, 4H)    bias_l{l}  (4H,)

gate blocks along the 4H axis in the order i, f, g, o. Everything is drawn from
U(-1/sqrt(H), 1/sqrt(H)) with the backend's seeded generator (layer by layer, in that order);
then the forget-gate block of each bias, bias_l{l}[H:2H], is set to ``forget_bias`` (1.0 by
default: a cell starts by keeping its memory; pass ``forget_bias=None`` to keep the uniform
draw). There is one bias per layer, where PyTorch has two that only ever appear summed.
"""

from __future__ import annotations

import math


from minipar.core.backend import xp
from minipar.autograd import ops
from minipar.nn.lstm_cell import lstm_composed
from minipar.nn.lstm_fused import LSTMLayer
from minipar.nn.module import Module, Parameter, uniform


class LSTM(Module):
    """Multi-layer LSTM: ``forward(x, state=None) -> (out, (h_n, c_n))``.

    x: Tensor (B, T, D); state: None (zeros) or (h0, c0), Tensors (num_layers, B, H);
    out: (B, T, H) from the last layer; h_n, c_n: (num_layers, B, H). Gradients flow into
    h0 and c0 when they require grad.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 fused: bool = True, forget_bias: float | None = 1.0):
        super().__init__()
        if min(input_size, hidden_size, num_layers) < 1:
            raise ValueError("LSTM sizes and num_layers must be positive, got "
                             f"{input_size}, {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.fused = num_layers, fused
        H = hidden_size
        k = 1.0 / math.sqrt(H)
        for layer in range(num_layers):
            d = input_size if layer == 0 else H
            setattr(self, f"weight_ih_l{layer}", Parameter(uniform((d, 4 * H), k)))
            setattr(self, f"weight_hh_l{layer}", Parameter(uniform((H, 4 * H), k)))
            bias = Parameter(uniform((4 * H,), k))
            if forget_bias is not None:
                bias.data[H:2 * H] = forget_bias
            setattr(self, f"bias_l{layer}", bias)

    def layer_weights(self, layer: int):
        """(weight_ih, weight_hh, bias) of one layer."""
        return (getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}"),
                getattr(self, f"bias_l{layer}"))

    def forward(self, x, state=None):
        B, _, D = x.shape
        if D != self.input_size:
            raise ValueError(f"LSTM expects input (B, T, {self.input_size}), got {x.shape}")
        expect = (self.num_layers, B, self.hidden_size)
        h0 = c0 = None
        if state is not None:
            h0, c0 = state
            if tuple(h0.shape) != expect or tuple(c0.shape) != expect:
                raise ValueError(f"LSTM state must be two tensors of shape {expect}, got "
                                 f"{tuple(h0.shape)} and {tuple(c0.shape)}")
        weights = [self.layer_weights(layer) for layer in range(self.num_layers)]
        return lstm_forward(x, h0, c0, weights, fused=self.fused)


def lstm_forward(x, h0, c0, weights, fused: bool = True):
    """Functional multi-layer LSTM: what ``LSTM.forward`` runs, on any tensors.

    x (B, T, D); h0, c0 (L, B, H) tensors or None (zeros); weights: a list of
    (w_ih, w_hh, b) per layer. Returns (out (B, T, H), (h_n, c_n)), h_n and c_n (L, B, H).
    """
    if not fused:
        return lstm_composed(x, h0, c0, weights)
    B = x.shape[0]
    H = weights[0][1].shape[0]
    zeros = xp.zeros((B, H), dtype=weights[0][1].dtype)
    out, h_last, c_last = x, [], []
    for layer, (w_ih, w_hh, b) in enumerate(weights):
        h = zeros if h0 is None else h0[layer]
        c = zeros if c0 is None else c0[layer]
        out, h_n, c_n = LSTMLayer.apply(out, h, c, w_ih, w_hh, b)
        h_last.append(h_n)
        c_last.append(c_n)
    return out, (ops.stack(h_last, axis=0), ops.stack(c_last, axis=0))
