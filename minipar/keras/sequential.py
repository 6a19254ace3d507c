"""``Sequential``: layers in a row, ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``.

    model = keras.Sequential([keras.layers.Embedding(1000, 64), keras.layers.LSTM(64),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=10, validation_split=0.2)

The model is built on the first batch it sees (or by ``build(input_shape)``), as in Keras 3:
each layer makes its parameters from the shape of its input. Under ``mpiexec`` the same
calls train data-parallel (``keras/distribute.py``).
"""

from __future__ import annotations

import numpy as np

from minipar.autograd import Tensor
from minipar.core.launcher import launcher_rank
from minipar.core import backend
from minipar.core.errors import ConfigError
from minipar.core.units import format_bytes
from minipar.keras import fit as loops
from minipar.keras import losses
from minipar.keras import optimizers as opt
from minipar.keras import saving
from minipar.keras.distribute import DataParallel, Distribute
from minipar.keras.layers import CallContext, Dense, Layer, activate, from_config
from minipar.nn.module import Module


class Sequential(Module):
    """A stack of layers; see the module docstring."""

    def __init__(self, layers=None, name: str = "sequential"):
        super().__init__()
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "layers", [])
        object.__setattr__(self, "input_shape", None)
        object.__setattr__(self, "compiled", None)
        object.__setattr__(self, "stop_training", False)
        for layer in layers or []:
            self.add(layer)

    # --- building -----------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential: {layer!r} is not a keras layer")
        if self.input_shape is not None:
            raise ConfigError("Sequential.add: the model is already built; add layers first")
        kind = layer.kind.lower().replace("globalaveragepooling1d", "global_average_pooling1d")
        taken = {lay.name for lay in self.layers}
        if layer.name is None:
            n = sum(1 for lay in self.layers if lay.kind == layer.kind)
            object.__setattr__(layer, "name", kind if n == 0 else f"{kind}_{n}")
        if layer.name in taken:
            raise ConfigError(f"Sequential: two layers are named {layer.name!r}")
        self.layers.append(layer)
        setattr(self, layer.name, layer)

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape) -> None:
        """Make every layer's parameters for inputs of ``input_shape`` (None: any batch)."""
        if not self.layers:
            raise ConfigError("Sequential: the model has no layers")
        shape = tuple(input_shape)
        object.__setattr__(self, "input_shape", shape)
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.output_shape(shape)
        if self.compiled is not None:
            self._attach()

    def output_shapes(self) -> list[tuple]:
        shape, out = self.input_shape, []
        for layer in self.layers:
            shape = layer.output_shape(shape)
            out.append(shape)
        return out

    # --- compiling --------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None,
                distribute: Distribute | None = None) -> None:
        """``optimizer``: 'adam', 'sgd' or a keras.optimizers object; ``loss``: see
        keras.losses; ``metrics``: ['accuracy'] or None; ``distribute``: how to run under
        mpiexec (keras.Distribute; the defaults when None)."""
        if optimizer == "rmsprop":
            raise ConfigError("compile(optimizer='rmsprop'): not available; use 'adam' or 'sgd'")
        key = losses.get_loss(loss)
        state = {"optimizer": opt.get(optimizer), "loss": key,
                 "metrics": losses.get_metrics(metrics, key),
                 "parallel": DataParallel(distribute or Distribute()), "optim": None}
        object.__setattr__(self, "compiled", state)
        if self.built:
            self._attach()

    def _attach(self) -> None:
        c = self.compiled
        params = self.parameters()
        c["parallel"].attach(params)
        c["optim"] = c["optimizer"].make(params)

    # --- running ------------------------------------------------------------------------
    def run(self, x: np.ndarray, ctx: CallContext):
        """(output, logits, the last layer's activation) on the rows ``x``: the logits are
        the last Dense's input to its activation, which the losses use."""
        h = x
        if x.dtype.kind not in "iu":  # features, not ids: a tensor of the model's dtype
            h = Tensor(backend.from_numpy(x, dtype=backend.default_dtype()))
        for layer in self.layers[:-1]:
            h = layer(h, ctx)
        last = self.layers[-1]
        if isinstance(last, Dense):
            z = last.pre_activation(h)
            return activate(z, last.activation), z, last.activation
        return last(h, ctx), None, "linear"

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, seed=None):
        """Train; returns a ``History`` (``.history``: loss, accuracy, val_loss, ...)."""
        return loops.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                         validation_data, shuffle, seed)

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False):
        """Loss (and metrics) on (x, y): a number, a list [loss, accuracy], or a dict."""
        return loops.evaluate(self, x, y, batch_size, verbose, return_dict)

    def predict(self, x, batch_size=32, verbose="auto") -> np.ndarray:
        """The model's outputs for every row of x, on every rank."""
        return loops.predict(self, x, batch_size, verbose)

    def __call__(self, x):
        return self.predict(np.asarray(x), verbose=0)

    # --- weights, summary, saving -------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [backend.to_numpy(p.data).copy() for p in self.parameters()]

    def set_weights(self, weights) -> None:
        if not self.built:
            raise ConfigError("set_weights: the model is not built yet (call build or fit)")
        params = self.parameters()
        if len(weights) != len(params):
            raise ConfigError(f"set_weights: {len(weights)} arrays for {len(params)} weights")
        for p, w in zip(params, weights):
            if tuple(np.shape(w)) != tuple(p.shape):
                raise ConfigError(f"set_weights: shape {np.shape(w)} for a weight of {p.shape}")
            p.data = backend.from_numpy(np.asarray(w), dtype=p.dtype).copy()

    def count_params(self) -> int:
        return self.num_parameters()

    def summary(self, print_fn=print) -> None:
        """Keras' table: layer (type), output shape, parameters; then the totals (printed
        by rank 0 only under mpiexec)."""
        if launcher_rank() != 0:
            return
        rows = []
        shapes = self.output_shapes() if self.built else [None] * len(self.layers)
        for layer, shape in zip(self.layers, shapes):
            n = layer.num_parameters() if layer.built else 0
            shown = "?" if shape is None else "(" + ", ".join(
                "None" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"
            rows.append((f"{layer.name} ({layer.kind})", shown,
                         f"{n:,}" if self.built else "0 (unbuilt)"))
        out = [f'Model: "{self.name}"', _rule("┏", "┳", "┓", "━"),
               _row("Layer (type)", "Output Shape", "Param #", "┃"), _rule("┡", "╇", "┩", "━")]
        for i, r in enumerate(rows):
            out.append(_row(*r))
            if i < len(rows) - 1:
                out.append(_rule("├", "┼", "┤", "─"))
        total = self.num_parameters()
        size = format_bytes(sum(p.data.nbytes for p in self.parameters()), ".2f")
        out += [_rule("└", "┴", "┘", "─"), f" Total params: {total:,} ({size})",
                f" Trainable params: {total:,} ({size})", " Non-trainable params: 0 (0 B)"]
        print_fn("\n".join(out))

    def save(self, path) -> None:
        """``path/config.json`` (the layers, the input shape, the compile settings) and
        ``path/weights.npz`` (every weight by name); written by rank 0 only, and every rank
        waits until it is there (so a ``load_model`` right after finds it)."""
        dp = self.compiled["parallel"] if self.compiled else None
        saving.write_model(self, path, dp.rank if dp else None)
        if dp is not None and dp.size > 1:
            with dp.comm.phase("save"):
                dp.comm.barrier()


def load_model(path) -> Sequential:
    """The model ``save`` wrote: layers rebuilt, weights loaded, compiled again when it was
    (the optimizer starts afresh: its state is not saved)."""
    config, weights = saving.read_model(path)
    model = Sequential([from_config(c["class"], c["config"]) for c in config["layers"]],
                       name=config.get("name", "sequential"))
    if config.get("input_shape") is not None:
        model.build(tuple(config["input_shape"]))
        saving.load_weights(model, weights, path)
    if config.get("compile"):
        c = config["compile"]
        model.compile(optimizer=opt.from_config(c["optimizer"]), loss=c["loss"],
                      metrics=c["metrics"])
    return model


WIDTHS = (33, 24, 15)  # the columns of summary()


def _row(a: str, b: str, c: str, sep: str = "│") -> str:
    w = WIDTHS
    return f"{sep} {a:<{w[0] - 2}} {sep} {b:<{w[1] - 2}} {sep} {c:>{w[2] - 2}} {sep}"


def _rule(left: str, mid: str, right: str, fill: str) -> str:
    return left + mid.join(fill * k for k in WIDTHS) + right
