"""``fit``, ``evaluate`` and ``predict`` of a Sequential model, on one rank or many.

One training step, on every rank (``keras/distribute.py`` says why it equals one process):

    idx   = order[k B : (k+1) B]             the global batch (the same order on every rank)
    mine  = idx[dp.rows(len(idx))]           this rank's contiguous block of it
    out   = model.run(x[mine])               forward (Dropout keeps its rows of a global mask)
    S     = loss_sum(out, y[mine])           the sum of the per-row losses
    (S / len(idx)).backward()                this rank's share of d(mean loss)/dw
    sums  = dp.step(optimizer, [S, hits, rows])   gradients summed over ranks (the metrics
                                             ride along), then the optimizer step

The epoch's loss is sum S / rows and its accuracy sum hits / rows over the whole epoch, as
Keras reports them (a mean weighted by batch size).
"""

from __future__ import annotations

import math
import time

import numpy as np

from minipar.autograd import no_grad
from minipar.core import backend
from minipar.core.errors import ConfigError
from minipar.keras import losses
from minipar.keras.callbacks import Callback, History
from minipar.keras.layers import CallContext, Dense, Embedding
from minipar.keras.progbar import Progress, format_logs, resolve


def _compiled(model, what: str) -> dict:
    if model.compiled is None:
        raise ConfigError(f"{what}: compile the model first, e.g. model.compile("
                          f"optimizer='adam', loss='binary_crossentropy')")
    return model.compiled


def as_array(a, what: str) -> np.ndarray:
    """A numeric array, or one clear error (ragged rows name the fix)."""
    if a is None:
        raise ConfigError(f"{what} is missing")
    try:
        out = np.asarray(a)
    except ValueError:
        out = np.asarray(a, dtype=object)
    if out.dtype == object:
        lengths = sorted({len(r) for r in a if hasattr(r, "__len__")})
        raise ConfigError(f"{what}: rows of different lengths ({', '.join(map(str, lengths[:4]))}"
                          f"{'...' if len(lengths) > 4 else ''}); pad them first with "
                          f"keras.utils.pad_sequences")
    if out.dtype.kind not in "biuf":
        raise ConfigError(f"{what}: needs numbers, got {out.dtype}")
    if out.ndim == 0:
        raise ConfigError(f"{what}: needs one row per example, got a single number")
    return out


def check_inputs(model, x, y, what: str = "x") -> None:
    """Rows agree, ids fit the first Embedding, labels fit the loss."""
    if y is not None and len(x) != len(y):
        raise ConfigError(f"{what} and its labels differ in length: {len(x)} rows, {len(y)} "
                          f"labels")
    first = model.layers[0] if model.layers else None
    if isinstance(first, Embedding):
        if x.dtype.kind == "f" and not np.all(np.mod(x, 1) == 0):
            raise ConfigError(f"{what}: an Embedding needs whole-number ids, got fractions")
        if x.size and (x.min() < 0 or x.max() >= first.input_dim):
            bad = x.min() if x.min() < 0 else x.max()
            raise ConfigError(f"{what}: ids must be in [0, {first.input_dim}) for "
                              f"Embedding(input_dim={first.input_dim}); found {int(bad)}")
    last = model.layers[-1] if model.layers else None
    if y is not None and isinstance(last, Dense):
        losses.check_labels(model.compiled["loss"], y, last.units,
                            "y" if what == "x" else f"{what} labels")


def _ids(x: np.ndarray, model) -> np.ndarray:
    return x.astype(np.int64) if isinstance(model.layers[0], Embedding) else x


def _logs(sums: np.ndarray, metrics: list[str], prefix: str = "") -> dict:
    rows = max(sums[2], 1.0)
    logs = {f"{prefix}loss": float(sums[0] / rows)}
    if metrics:
        logs[f"{prefix}accuracy"] = float(sums[1] / rows)
    return logs


def _batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r}: must be a positive whole number")
    return int(batch_size)


def _verbose(verbose) -> int:
    if verbose not in ("auto", 0, 1, 2):
        raise ConfigError(f"verbose={verbose!r}: use 'auto', 0, 1 or 2")
    return resolve(verbose)


def _validation(validation_data, x, y):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ConfigError("validation_data: give a pair (x_val, y_val)")
    xv = as_array(validation_data[0], "validation_data x")
    yv = as_array(validation_data[1], "validation_data y")
    if xv.ndim != x.ndim or xv.shape[2:] != x.shape[2:] or yv.shape[1:] != y.shape[1:]:
        raise ConfigError(f"validation_data: shapes {xv.shape} and {yv.shape} do not match "
                          f"the training data's rows, {x.shape[1:]} and {y.shape[1:]}")
    return xv, yv


def _sums(model, x, y, batch_size: int) -> tuple[np.ndarray, list]:
    """(loss sum, hits, rows) over this rank's block of (x, y), and the outputs, no graph."""
    c = model.compiled
    out_all, sums = [], np.zeros(3)
    with no_grad():
        for at in range(0, len(x), batch_size):
            xb = _ids(x[at:at + batch_size], model)
            out, z, act = model.run(xb, CallContext(training=False))
            if y is not None and c is not None:
                yb = y[at:at + batch_size]
                sums += [losses.loss_sum(c["loss"], out, z, act, yb).item(),
                         losses.correct(c["loss"], backend.to_numpy(out.data), yb)
                         if c["metrics"] else 0.0, len(xb)]
            out_all.append(backend.to_numpy(out.data))
    return sums, out_all


def evaluate_arrays(model, x, y, batch_size: int) -> dict:
    """Loss and metrics over (x, y), rows shared out over the ranks, one reduction."""
    dp = model.compiled["parallel"]
    block = dp.rows(len(x))
    sums, _ = _sums(model, x[block], y[block], batch_size)
    return _logs(dp.reduce(sums), model.compiled["metrics"])


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split,
        validation_data, shuffle, seed):
    c = _compiled(model, "fit")
    dp, metrics, loss = c["parallel"], c["metrics"], c["loss"]
    x, y = as_array(x, "x"), as_array(y, "y")
    batch_size, verbose = _batch_size(batch_size), _verbose(verbose)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ConfigError(f"epochs={epochs!r}: must be a whole number >= 0")
    val = None
    if validation_data is not None:
        val = _validation(validation_data, x, y)
    elif validation_split:
        if not 0.0 < validation_split < 1.0:
            raise ConfigError(f"validation_split={validation_split!r}: must be in (0, 1)")
        cut = int(len(x) * (1.0 - validation_split))  # the last rows, before shuffling
        x, y, val = x[:cut], y[:cut], (x[cut:], y[cut:])
    dp.same_data("fit", x, y, *(val or ()))  # before any check that could differ by rank
    if not model.built:
        model.build((None, *x.shape[1:]))
    check_inputs(model, x, y)
    if val is not None:
        check_inputs(model, *val, what="validation_data x")
    if len(x) == 0:
        raise ConfigError("fit: x has no rows")
    history = History()
    cbs = [history, *(callbacks or [])]
    steps = math.ceil(len(x) / batch_size)
    for cb in cbs:
        if not isinstance(cb, Callback):
            raise ConfigError(f"callbacks: {cb!r} is not a keras.callbacks.Callback")
        cb.set_model(model)
        cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
    order_rng = np.random.default_rng(seed if seed is not None else
                                      int(backend.rng().integers(2 ** 62)))
    optimizer, xi, tracer = c["optim"], _ids(x, model), dp.comm.tracer
    model.stop_training = False
    for cb in cbs:
        cb.on_train_begin()
    for epoch in range(epochs):
        progress = Progress(steps, verbose, show=dp.rank == 0)
        progress.begin(epoch, epochs)
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        order = order_rng.permutation(len(x)) if shuffle else np.arange(len(x))
        sums, dp.comm_s, t0 = np.zeros(3), 0.0, time.perf_counter()
        for step in range(steps):
            for cb in cbs:
                cb.on_train_batch_begin(step)
            idx = order[step * batch_size:(step + 1) * batch_size]
            rows = dp.rows(len(idx))
            mine = idx[rows]
            optimizer.zero_grad()
            with tracer.compute("forward"):
                out, z, act = model.run(xi[mine], CallContext(True, rows=rows,
                                                              global_rows=len(idx)))
                s = losses.loss_sum(loss, out, z, act, y[mine])
            local = np.zeros(3)
            if len(mine):
                with tracer.compute("backward"):
                    (s * (1.0 / len(idx))).backward()
                local[:] = [s.item(), losses.correct(loss, backend.to_numpy(out.data), y[mine])
                            if metrics else 0.0, len(mine)]
            sums += dp.step(optimizer, local, len(mine), len(idx))
            logs = _logs(sums, metrics)
            share = dp.comm_s / max(time.perf_counter() - t0, 1e-9) if dp.size > 1 else None
            progress.update(step + 1, logs, share)
            for cb in cbs:
                cb.on_train_batch_end(step, logs)
        if val is not None:
            logs.update({f"val_{k}": v for k, v in
                         evaluate_arrays(model, val[0], val[1], batch_size).items()})
        progress.end(logs, share)
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in cbs:
        cb.on_train_end()
    dp.report()
    return history


def evaluate(model, x, y, batch_size, verbose, return_dict):
    c = _compiled(model, "evaluate")
    x, y = as_array(x, "x"), as_array(y, "y")
    batch_size, verbose = _batch_size(batch_size), _verbose(verbose)
    c["parallel"].same_data("evaluate", x, y)
    if not model.built:
        raise ConfigError("evaluate: the model is not built yet (fit it first)")
    check_inputs(model, x, y)
    logs = evaluate_arrays(model, x, y, batch_size)
    if verbose and c["parallel"].rank == 0:
        print(f"{math.ceil(len(x) / batch_size)} batches - {format_logs(logs)}", flush=True)
    if return_dict:
        return logs
    return [logs["loss"], logs["accuracy"]] if "accuracy" in logs else logs["loss"]


def predict(model, x, batch_size, verbose) -> np.ndarray:
    x, batch_size = as_array(x, "x"), _batch_size(batch_size)
    _verbose(verbose)
    if not model.built:
        model.build((None, *x.shape[1:]))
    dp = model.compiled["parallel"] if model.compiled else None
    if dp is not None:
        dp.same_data("predict", x)
    check_inputs(model, x, None)
    block = dp.rows(len(x)) if dp is not None else slice(None)
    _, outs = _sums(model, x[block], None, batch_size)
    units = model.output_shapes()[-1][1:]
    mine = np.concatenate(outs) if outs else np.zeros((0, *units))
    return dp.gather_rows(mine, len(x)) if dp is not None else mine
