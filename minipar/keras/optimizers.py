"""Keras' optimizers by name or object, on minipar's own (``nn.optim``).

    keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    keras.optimizers.SGD(learning_rate=0.01, momentum=0.0)

An optimizer object holds its settings until the model is built; ``make(params)`` then
creates the minipar optimizer over the model's parameters. The Adam update is

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,   w -= lr m_hat / (sqrt(v_hat) + eps)

with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t) (Keras puts eps beside sqrt(v) before the
bias correction; the two differ by eps (1 - sqrt(1 - b2^t)), under 1e-7).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minipar.core.errors import ConfigError
from minipar.nn import optim


@dataclass
class Adam:
    learning_rate: float = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def make(self, params) -> optim.Adam:
        return optim.Adam(params, lr=self.learning_rate, betas=(self.beta_1, self.beta_2),
                          eps=self.epsilon)


@dataclass
class SGD:
    learning_rate: float = 0.01
    momentum: float = 0.0

    def make(self, params) -> optim.SGD:
        return optim.SGD(params, lr=self.learning_rate, momentum=self.momentum)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def to_config(optimizer) -> dict:
    """``{"class": "adam", **settings}``, for saving."""
    name = {cls: key for key, cls in OPTIMIZERS.items()}[type(optimizer)]
    return {"class": name, **dataclasses.asdict(optimizer)}


def from_config(config: dict):
    settings = dict(config)
    return OPTIMIZERS[settings.pop("class")](**settings)


def get(optimizer):
    """An optimizer object from a name ('adam', 'sgd') or an object with ``make``."""
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(f"compile(optimizer={optimizer!r}): use one of "
                              f"{', '.join(OPTIMIZERS)}, or keras.optimizers.Adam(...)")
        return OPTIMIZERS[optimizer.lower()]()
    if not hasattr(optimizer, "make"):
        raise ConfigError(f"compile(optimizer={optimizer!r}): give 'adam', 'sgd' or a "
                          f"keras.optimizers object")
    if not optimizer.learning_rate > 0:
        raise ConfigError(f"learning_rate={optimizer.learning_rate!r}: must be positive")
    return optimizer
