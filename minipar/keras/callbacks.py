"""Callbacks: ``Callback`` to subclass, ``History``, ``EarlyStopping``, ``ModelCheckpoint``.

``fit`` calls, on every rank, ``on_train_begin``, then per epoch ``on_epoch_begin(epoch)``,
``on_train_batch_begin/end(step, logs)`` and ``on_epoch_end(epoch, logs)``, and
``on_train_end``. ``logs`` holds the epoch's metrics (the same numbers on every rank: they
are reduced across ranks), so a callback decides the same everywhere: when EarlyStopping
stops, every rank stops at the same epoch. Only rank 0 writes files.
"""

from __future__ import annotations

import math
import os

from minipar.core.errors import ConfigError


class Callback:
    """Override any of the ``on_*`` methods; ``self.model`` is the model being trained."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class History(Callback):
    """``history.history``: metric name -> one value per epoch; ``history.epoch``: 0, 1, ..."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode={mode!r}: use 'auto', 'min' or 'max'")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


def _value(logs: dict, monitor: str, who: str) -> float:
    if monitor not in (logs or {}):
        raise ConfigError(f"{who}(monitor={monitor!r}): fit reports only "
                          f"{', '.join(sorted(logs or {}))} (val_* need validation data)")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs; with ``restore_best_weights`` the weights of the best epoch come back."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.mode = _mode(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = _value(logs, self.monitor, "EarlyStopping")
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) after each epoch, or only when ``monitor`` improved
    (``save_best_only``). ``filepath`` may hold ``{epoch}`` and metric names:
    ``"ckpt/e{epoch:02d}-{val_loss:.3f}"``."""

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto"):
        super().__init__()
        self.filepath, self.monitor, self.save_best_only = os.fspath(filepath), monitor, \
            save_best_only
        self.mode = _mode(monitor, mode)

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _value(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(f"ModelCheckpoint(filepath={self.filepath!r}): cannot fill in "
                              f"{exc} (available: epoch, {', '.join(sorted(logs))})") from None
        self.model.save(path)
