"""What a parallel method has to move and hold: one training step of a model, in numbers.

A ``Workload`` is all the advisor (``planning/advise.py``) knows of a model:

    P        parameters; G = P x (bytes per number) gradient bytes per step
    B        global batch (rows per step, over all ranks)
    fb(b)    seconds of forward + backward on b rows, one core:  fb(b) = t0 + t1 b
             (t0: what a step costs whatever its size, Python's per-call and per-time-step
             work; t1: the per-row work, mostly GEMMs), measured on this machine, or
             F b / R from the FLOPs F per row at a rate R when nothing could be run
    cv       its spread from step to step; a synchronous step of p ranks waits for the
             slowest, fb (1 + cv z_p) (``fb_slowest``)
    opt      seconds of the optimizer step, clipping and zeroing, and of building the
             global batch (once per step, on every rank: it is not split)
    A        activation bytes per row kept for the backward pass
    cut      bytes per row that cross a pipeline cut (one LSTM layer's outputs: T H bytes)
    layers   how many pieces a pipeline may cut the model into

Memory of a replica that trains with Adam:

    M_state = 4 G            weights, gradients, Adam's m and v
    M(b)    = M_state + G + A b     (+ G: the packed buffer an allreduce sends)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["Workload", "lstm_counts", "mlp_counts", "classifier_counts", "keras_counts"]


@dataclass
class Workload:
    """One training step in numbers (see the module docstring)."""

    name: str
    params: int
    batch: int
    itemsize: int = 4
    fb_line: tuple[float, float] = (0.0, 0.0)  # (t0, t1) seconds, one core
    fb_full: float | None = None   # fb(B) of one process with all of this machine's cores
    opt_s: float = 0.0
    fb_cv: float = 0.0             # spread of fb from step to step: sd / median
    cv_by_rows: dict = field(default_factory=dict)  # measured b -> its spread (wins)
    flops_per_row: float = 0.0     # forward + backward
    act_bytes_per_row: float = 0.0
    cut_bytes_per_row: float = 0.0
    layers: int = 1
    pipeline: bool = False         # minipar.pipeline can run this model
    tokens_per_row: int = 1
    source: str = ""               # how fb was found, for the report
    ngram: dict | None = None      # N-gram: tokens, keys, key_bytes, count_s (one core)
    settings: dict = field(default_factory=dict)  # the sizes it was built with
    epoch_rows: int | None = None  # rows in one pass over the training data

    @property
    def grad_bytes(self) -> float:
        return float(self.params * self.itemsize)

    def fb(self, rows: float) -> float:
        """fb(b) = t0 + t1 b on one core (0 rows: nothing to do)."""
        t0, t1 = self.fb_line
        return t0 + t1 * rows if rows > 0 else 0.0

    def fb_slowest(self, rows: float, p: int) -> float:
        """The slowest of p ranks' fb(rows), which a synchronous step waits for:
        fb(rows) (1 + cv z_p), z_p = E[max of p standard normals] ~ Phi^-1((p - 0.375) /
        (p + 0.25)) (Blom): 0.56 at p = 2, 1.03 at 4, 3.2 at 1,024."""
        cv = self.fb_cv
        if self.cv_by_rows:  # the spread measured at the closest number of rows
            cv = self.cv_by_rows[min(self.cv_by_rows,
                                     key=lambda b: abs(math.log(b / max(rows, 1e-9))))]
        if p < 2 or not cv:
            return self.fb(rows)
        z = NormalDist().inv_cdf((p - 0.375) / (p + 0.25))
        return self.fb(rows) * (1 + cv * z)

    def memory(self, rows: float, share: float = 1.0, buffers: float = 1.0) -> float:
        """Peak bytes of a rank holding ``share`` of the model and activations of ``rows``
        rows: 4 G share + buffers G share + A rows."""
        g = self.grad_bytes * share
        return 4 * g + buffers * g + self.act_bytes_per_row * rows


def lstm_counts(vocab: int, embed: int, hidden: int, layers: int, seq: int,
                itemsize: int = 4, tied: bool = False) -> dict:
    """Parameters, FLOPs and activation bytes per row (a window of T = ``seq`` tokens) of
    the LSTM LM:

        P = V E + sum_l 4H (in_l + H + 1) + (V H if not tied) + V      in_1 = E, else H
        F = 3 T [sum_l 8H (in_l + H) + 2 H V]        forward 2 x (multiply-adds), backward 2x
        A = T [sum_l (in_l + 7H) + 2V] bytes/number  inputs, gates, c, h, tanh c; logits, grads
    """
    ins = [embed] + [hidden] * (layers - 1)
    params = vocab * embed + sum(4 * hidden * (i + hidden + 1) for i in ins) + vocab
    params += 0 if tied else vocab * hidden
    flops = 3 * seq * (sum(8 * hidden * (i + hidden) for i in ins) + 2 * hidden * vocab)
    act = seq * (sum(i + 7 * hidden for i in ins) + 2 * vocab) * itemsize
    return {"params": params, "flops_per_row": flops, "act_bytes_per_row": act,
            "cut_bytes_per_row": seq * hidden * itemsize, "layers": layers,
            "tokens_per_row": seq}


def mlp_counts(vocab: int, embed: int, hidden: int, context: int, itemsize: int = 4) -> dict:
    """Bengio's MLP, one row = one context of n-1 tokens:

        P = V E + (n-1) E H + H + H V + V
        F = 3 [2 (n-1) E H + 2 H V],    A = [(n-1) E + 2H + 2V] bytes/number
    """
    params = vocab * embed + context * embed * hidden + hidden + hidden * vocab + vocab
    flops = 3 * (2 * context * embed * hidden + 2 * hidden * vocab)
    act = (context * embed + 2 * hidden + 2 * vocab) * itemsize
    return {"params": params, "flops_per_row": flops, "act_bytes_per_row": act,
            "cut_bytes_per_row": 0, "layers": 1, "tokens_per_row": 1}


def classifier_counts(vocab: int, embed: int, hidden: int, seq: int,
                      itemsize: int = 4) -> dict:
    """Embedding -> LSTM -> Dense(1), one row = one example of T tokens:

        P = V E + 4H (E + H + 1) + H + 1
        F = 3 [8 T H (E + H) + 2H],    A = T (E + 7H) bytes/number
    """
    params = vocab * embed + 4 * hidden * (embed + hidden + 1) + hidden + 1
    flops = 3 * (8 * seq * hidden * (embed + hidden) + 2 * hidden)
    act = seq * (embed + 7 * hidden) * itemsize
    return {"params": params, "flops_per_row": flops, "act_bytes_per_row": act,
            "cut_bytes_per_row": 0, "layers": 1, "tokens_per_row": seq}


def keras_counts(config: dict, itemsize: int = 4) -> dict:
    """Parameters, FLOPs and activations per row of a saved Keras-style model's config
    (``config.json``: Embedding, LSTM, Dense, Dropout, GlobalAveragePooling1D), T from its
    ``input_shape``:

        Embedding  V E                    LSTM  4H (in + H + 1), F 24 T H (in + H)
        Dense      in u + u, F 6 in u (per position when the input is a sequence)
    """
    shape = config.get("input_shape") or [None, None]
    seq = int(shape[-1] or 1)
    params = flops = act = 0
    width, steps, layers = 1, seq, 0
    for layer in config.get("layers", []):
        kind, c = layer.get("class"), layer.get("config", {})
        if kind == "Embedding":
            params += c["input_dim"] * c["output_dim"]
            width = c["output_dim"]
            act += steps * width
        elif kind == "LSTM":
            h = c["units"]
            params += 4 * h * (width + h + 1)
            flops += 24 * steps * h * (width + h)
            act += steps * (width + 7 * h)
            width, steps = h, (steps if c.get("return_sequences") else 1)
            layers += 1
        elif kind == "Dense":
            u = c["units"]
            params += width * u + u
            flops += 6 * steps * width * u
            act += steps * 2 * u
            width = u
        elif kind == "GlobalAveragePooling1D":
            steps = 1
        elif kind != "Dropout":
            raise ValueError(f"no counts for a {kind} layer")
    return {"params": params, "flops_per_row": float(flops), "act_bytes_per_row": act * itemsize,
            "cut_bytes_per_row": 0, "layers": max(layers, 1), "tokens_per_row": seq}
