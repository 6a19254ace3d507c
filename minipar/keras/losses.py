"""Keras' losses and the accuracy metric, as sums over rows (so ranks can add them up).

For a batch of B rows the loss Keras reports is the mean over rows of a per-row loss l_i;
here every function returns S = sum_i l_i, and the caller divides by the global B:

    binary_crossentropy        l_i = (1/U) sum_u -[y log p + (1 - y) log(1 - p)]
    categorical_crossentropy   l_i = -sum_c y_c log p_c
    sparse_categorical_...     l_i = -log p_{y_i}
    mse                        l_i = (1/U) sum_u (p - y)^2

(U: outputs per row.) When the last layer's activation is the sigmoid (binary) or the
softmax (categorical), the loss is computed from its input z, the logits, in the
overflow-free form: BCE = max(z, 0) - z y + log(1 + e^-|z|), CE = log sum e^z - z_y (what
Keras does too). Otherwise probabilities are clipped to [1e-7, 1 - 1e-7] as Keras clips them.
"""

from __future__ import annotations

import numpy as np

from minipar.autograd import Tensor, ops
from minipar.core import backend
from minipar.core.backend import xp
from minipar.core.errors import ConfigError

EPS = 1e-7
LOSSES = ("binary_crossentropy", "categorical_crossentropy",
          "sparse_categorical_crossentropy", "mse")
ALIASES = {"mean_squared_error": "mse", "bce": "binary_crossentropy"}
METRICS = ("accuracy",)


def get_loss(name) -> str:
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in LOSSES:
        raise ConfigError(f"compile(loss={name!r}): use one of {', '.join(LOSSES)}")
    return key


def get_metrics(metrics, loss: str) -> list[str]:
    out = []
    for m in metrics or []:
        key = "accuracy" if m in ("accuracy", "acc") else m
        if key not in METRICS:
            raise ConfigError(f"compile(metrics=[{m!r}]): the metrics supported are "
                              f"{', '.join(METRICS)}")
        if loss == "mse":
            raise ConfigError("compile(metrics=['accuracy']) needs a classification loss, "
                              "not 'mse'")
        out.append(key)
    return out


def _const(a, like) -> Tensor:
    return Tensor(backend.from_numpy(np.asarray(a), dtype=like.dtype))


def loss_sum(loss: str, out, logits, activation: str, y: np.ndarray):
    """S = sum over rows of the per-row loss (a scalar Tensor); see the module docstring."""
    units = out.shape[-1] if out.ndim > 1 else 1
    if loss == "sparse_categorical_crossentropy":
        t = backend.from_numpy(y.reshape(-1).astype(np.int64))
        if activation == "softmax":
            return ops.cross_entropy(logits, t, reduction="sum")
        p = ops.getitem(out, (xp.arange(out.shape[0]), t))
        return -ops.sum(ops.log(_clip(p)))
    target = _const(y.reshape(out.shape), out)
    if loss == "binary_crossentropy":
        if activation == "sigmoid":
            s = ops.binary_cross_entropy_with_logits(logits, target, reduction="sum")
        else:
            p = _clip(out)
            s = -ops.sum(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))
        return s * (1.0 / units)
    if loss == "categorical_crossentropy":
        if activation == "softmax":
            shifted = logits - Tensor(xp.max(logits.data, axis=-1, keepdims=True))
            log_p = shifted - ops.log(ops.sum(ops.exp(shifted), axis=-1, keepdims=True))
        else:
            log_p = ops.log(_clip(out))
        return -ops.sum(target * log_p)
    diff = out - target
    return ops.sum(diff * diff) * (1.0 / units)


def _clip(p):
    """Probabilities clipped to [EPS, 1 - EPS] in value; the gradient passes unchanged."""
    clipped = xp.clip(p.data, EPS, 1.0 - EPS)
    return p + Tensor(clipped - p.data)


def correct(loss: str, out: np.ndarray, y: np.ndarray) -> float:
    """How many rows the output gets right (binary: elements over U), for 'accuracy'."""
    if loss == "binary_crossentropy":
        hits = (out > 0.5) == (y.reshape(out.shape) > 0.5)
        return float(hits.sum()) / (out.shape[-1] if out.ndim > 1 else 1)
    pred = out.argmax(axis=-1)
    truth = y.reshape(-1) if loss == "sparse_categorical_crossentropy" else y.argmax(axis=-1)
    return float((pred == truth).sum())


def check_labels(loss: str, y: np.ndarray, units: int, what: str = "y") -> None:
    """One clear error for labels the loss cannot take."""
    if loss == "binary_crossentropy":
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise ConfigError(f"{what}: binary_crossentropy needs labels 0 or 1, found "
                              f"{y.reshape(-1)[bad.reshape(-1)][0]!r}")
    elif loss == "sparse_categorical_crossentropy":
        if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
            raise ConfigError(f"{what}: sparse_categorical_crossentropy needs integer class "
                              f"ids")
        if y.size and (y.min() < 0 or y.max() >= units):
            raise ConfigError(f"{what}: class ids must be in [0, {units}) for the last "
                              f"Dense({units}); found {int(y.min())}..{int(y.max())}")
    elif loss == "categorical_crossentropy" and y.ndim >= 1 and y.shape[-1] != units:
        raise ConfigError(f"{what}: categorical_crossentropy needs one-hot rows of {units} "
                          f"(the last Dense's units), got shape {y.shape}")
