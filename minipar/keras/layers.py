"""Keras-style layers on minipar's autograd: Embedding, LSTM, Dense, Dropout,
GlobalAveragePooling1D.

Each layer is an ``nn.Module`` whose parameters are made on the first batch it sees
(``build(input_shape)``), as in Keras 3, with Keras' initialisers:

    Embedding  embeddings ~ U(-0.05, 0.05)
    Dense      kernel ~ U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Glorot);  bias = 0
    LSTM       kernel (D, 4H) Glorot;  recurrent_kernel (H, 4H) orthogonal;  bias = 0 but the
               forget-gate block = 1 (unit_forget_bias); gate blocks i, f, c, o as in Keras

``call(x, ctx)`` computes the layer on this rank's rows; ``ctx`` carries what Keras keeps
implicit: training or not, the mask (as lengths, see Embedding), and which rows of the
global batch this rank holds (Dropout draws its mask for the whole global batch, then keeps
these rows, so K ranks drop exactly what one process drops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minipar.autograd import Tensor, ops
from minipar.core import backend
from minipar.core.backend import xp
from minipar.core.errors import ConfigError
from minipar.nn.lstm import lstm_forward
from minipar.nn.module import Module, Parameter

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax")


@dataclass
class CallContext:
    """What a layer needs besides its input: the phase, the mask and the rows held."""

    training: bool = False
    lengths: np.ndarray | None = None  # real steps per row, set by Embedding(mask_zero=True)
    rows: slice = field(default_factory=lambda: slice(None))  # this rank's rows of the batch
    global_rows: int = 0  # rows in the whole global batch (0: the batch is all here)


def glorot(fan_in: int, fan_out: int, shape) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return backend.rng().uniform(-limit, limit, size=shape)


def orthogonal(rows: int, cols: int) -> np.ndarray:
    """Keras' Orthogonal initialiser: Q of the QR of a normal (max, min) matrix, signs fixed
    by diag(R), transposed when rows < cols (then the rows are orthonormal)."""
    a = backend.rng().normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def _param(array) -> Parameter:
    return Parameter(backend.from_numpy(np.asarray(array), dtype=backend.default_dtype()))


class Layer(Module):
    """Base of the Keras-style layers: lazy ``build``, ``call``, a config for saving."""

    kind = "Layer"

    def __init__(self, name: str | None = None):
        super().__init__()
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "built", False)

    def build(self, input_shape: tuple) -> None:
        object.__setattr__(self, "built", True)

    def output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def call(self, x, ctx: CallContext):
        raise NotImplementedError

    def forward(self, x, ctx: CallContext | None = None):
        if not self.built:
            self.build(tuple(x.shape))
        return self.call(x, ctx or CallContext())

    def get_config(self) -> dict:
        return {"name": self.name}


class Embedding(Layer):
    """ids (B, T) -> vectors (B, T, output_dim).

    With ``mask_zero=True`` id 0 is padding: each row's real ids are moved to the front
    (their order kept) and ``ctx.lengths`` records how many there are, so the LSTM after it
    starts from a zero state at the first real id and its answer is h at the last real id:
    what Keras' mask gives, for any padding side (a difference: a sequence output keeps the
    real steps at the front rather than in place, docs/keras.md)."""

    kind = "Embedding"

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False,
                 name: str | None = None):
        super().__init__(name)
        _positive(input_dim=input_dim, output_dim=output_dim)
        self.input_dim, self.output_dim, self.mask_zero = input_dim, output_dim, mask_zero

    def build(self, input_shape):
        self.embeddings = _param(backend.rng().uniform(-0.05, 0.05,
                                                       (self.input_dim, self.output_dim)))
        self.embeddings.sparse_grad = True  # rows only for the ids a batch used
        super().build(input_shape)

    def output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def call(self, ids, ctx):
        ids = ids.data if isinstance(ids, Tensor) else ids
        if self.mask_zero:
            host = backend.to_numpy(ids)
            real = host != 0
            order = np.argsort(~real, axis=1, kind="stable")  # real ids first, order kept
            host = np.take_along_axis(host, order, axis=1)
            ctx.lengths = real.sum(axis=1)
            ids = backend.from_numpy(host)
        return ops.embedding(self.embeddings, ids)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero}


class LSTM(Layer):
    """(B, T, D) -> h at the last step (B, units), or every step (B, T, units) with
    ``return_sequences=True``. Runs minipar's fused LSTM layer (forward and BPTT by hand)."""

    kind = "LSTM"

    def __init__(self, units: int, return_sequences: bool = False, name: str | None = None):
        super().__init__(name)
        _positive(units=units)
        self.units, self.return_sequences = units, return_sequences

    def build(self, input_shape):
        D, H = input_shape[-1], self.units
        self.kernel = _param(glorot(D, 4 * H, (D, 4 * H)))
        self.recurrent_kernel = _param(orthogonal(H, 4 * H))  # orthonormal rows, as Keras
        bias = np.zeros(4 * H)
        bias[H:2 * H] = 1.0
        self.bias = _param(bias)
        super().build(input_shape)

    def output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        return (B, T, self.units) if self.return_sequences else (B, self.units)

    def call(self, x, ctx):
        out, _ = lstm_forward(x, None, None, [(self.kernel, self.recurrent_kernel, self.bias)])
        if self.return_sequences:
            return out
        if ctx.lengths is None:
            return ops.getitem(out, (slice(None), -1))
        lengths, ctx.lengths = ctx.lengths, None  # the mask ends here, as in Keras
        last = np.maximum(lengths - 1, 0)
        h = ops.getitem(out, (xp.arange(out.shape[0]), backend.from_numpy(last)))
        if lengths.min() > 0:
            return h
        real = (lengths > 0).astype(np.float64)[:, None]  # an all-padding row gives zeros
        return h * Tensor(backend.from_numpy(real, dtype=h.dtype))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "return_sequences": self.return_sequences}


class Dense(Layer):
    """y = activation(x W + b) on the last axis; ``activation`` None/'linear', 'relu',
    'tanh', 'sigmoid' or 'softmax'."""

    kind = "Dense"

    def __init__(self, units: int, activation: str | None = None, name: str | None = None):
        super().__init__(name)
        _positive(units=units)
        if activation is not None and activation not in ACTIVATIONS:
            raise ConfigError(f"Dense(activation={activation!r}): use one of "
                              f"{', '.join(ACTIVATIONS)} or None")
        self.units, self.activation = units, activation or "linear"

    def build(self, input_shape):
        fan_in = input_shape[-1]
        self.kernel = _param(glorot(fan_in, self.units, (fan_in, self.units)))
        self.bias = _param(np.zeros(self.units))
        super().build(input_shape)

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def pre_activation(self, x):
        """x W + b, before the activation (losses use it: the stable form on logits)."""
        shape = x.shape
        flat = ops.reshape(x, (-1, shape[-1])) if len(shape) != 2 else x
        y = ops.matmul(flat, self.kernel) + self.bias
        return ops.reshape(y, (*shape[:-1], self.units)) if len(shape) != 2 else y

    def call(self, x, ctx):
        return activate(self.pre_activation(x), self.activation)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation}


class Dropout(Layer):
    """While training, zero each element with probability ``rate`` and scale the rest by
    1 / (1 - rate); the identity otherwise. The mask is drawn for the whole global batch
    from the layer's own generator, then this rank's rows are kept. Its ``seed`` defaults to
    a draw from minipar's generator (``utils.set_random_seed``), so every rank, and every
    run of the same script, draws the same masks."""

    kind = "Dropout"

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None):
        super().__init__(name)
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"Dropout(rate={rate!r}): the rate must be in [0, 1)")
        if seed is None:  # from minipar's seeded generator: the same on every rank and run
            seed = int(backend.rng().integers(2 ** 62))
        self.rate, self.seed = rate, seed
        object.__setattr__(self, "_rng", np.random.default_rng(seed))

    def call(self, x, ctx):
        if not ctx.training or self.rate == 0.0:
            return x
        rows = ctx.global_rows or x.shape[0]
        keep = self._rng.random((rows, *x.shape[1:])) >= self.rate
        mask = keep[ctx.rows].astype(np.float64) / (1.0 - self.rate)
        return x * Tensor(backend.from_numpy(mask, dtype=x.dtype))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class GlobalAveragePooling1D(Layer):
    """(B, T, F) -> (B, F): the mean over the steps (the real steps only, under a mask)."""

    kind = "GlobalAveragePooling1D"

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def call(self, x, ctx):
        if ctx.lengths is None:
            return ops.mean(x, axis=1)
        T = x.shape[1]
        real = (np.arange(T)[None, :] < ctx.lengths[:, None]).astype(np.float64)
        weights = real / np.maximum(ctx.lengths, 1)[:, None]
        ctx.lengths = None
        w = Tensor(backend.from_numpy(weights[:, :, None], dtype=x.dtype))
        return ops.sum(x * w, axis=1)


def activate(z, name: str):
    """The activation ``name`` applied to the tensor z."""
    if name == "linear":
        return z
    if name == "softmax":
        shifted = z - Tensor(xp.max(z.data, axis=-1, keepdims=True))
        e = ops.exp(shifted)
        return e / ops.sum(e, axis=-1, keepdims=True)
    return {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid}[name](z)


def _positive(**sizes) -> None:
    for key, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{key}={value!r}: must be a positive whole number")


LAYERS = {cls.kind: cls for cls in (Embedding, LSTM, Dense, Dropout, GlobalAveragePooling1D)}


def from_config(kind: str, config: dict) -> Layer:
    """A layer rebuilt from ``get_config()`` (used by ``load_model``)."""
    if kind not in LAYERS:
        raise ConfigError(f"unknown layer {kind!r} in a saved model")
    return LAYERS[kind](**config)
