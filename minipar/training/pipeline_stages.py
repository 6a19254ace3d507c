"""Pipeline-parallel execution of the LSTM language model: one stage per rank, a static plan.

The model's L LSTM layers are cut into S contiguous stages, stage s holding layers
[floor(s L / S), floor((s+1) L / S)); stage 0 also holds the embedding, stage S-1 the
decoder and the loss. A batch of B rows is cut into M micro-batches of b = B / M rows,
micro-batch m being rows [m b, (m+1) b). For micro-batch m:

    stage 0      a_0 = layers(E[ids_m])                          send a_0 to stage 1
    stage s      a_s = layers(a_{s-1})   (a_{s-1} a leaf)        send a_s to stage s+1
    stage S-1    loss_m = (1/N) sum_{tokens of m} -ln p(y | history),   N = B T

so the batch loss L = sum_m loss_m is the one-process mean over all B T tokens. Backward of
micro-batch m on stage s: receive g = dL/da_s, call ``a_s.backward(g)`` (the last stage
calls ``loss_m.backward()``), then send the input leaf's ``.grad`` = dL/da_{s-1} upstream.
Parameter gradients add up over micro-batches, dL/dW = sum_m d loss_m / dW, so once every
backward has run each stage holds exactly the one-process model's gradients of its layers.

The order of all of this is the plan of ``pipeline_plan.py`` (GPipe or 1F1B), the same
action list the dry run accepted; ``run_step`` just walks this rank's list. Messages are
tagged 2m (activation) and 2m+1 (gradient) and carry a note naming the micro-batch. Sends
are ``isend`` (waited at the end of the step: the buffered semantics the plan's predicted
times assume; the plan was checked deadlock-free even with blocking sends), receives block.

Truncated BPTT across windows: each stage keeps, per micro-batch, the detached final (h, c)
of its own layers and starts the next window from it, as the one-process model does per row.
"""

from __future__ import annotations

import time

import numpy as np

from minipar.core import backend

from minipar.core.backend import xp
from minipar.autograd import Tensor, ops
from minipar.core.errors import ConfigError
from minipar.nn.lstm_cell import lstm_composed
from minipar.nn.lstm_fused import LSTMLayer
from minipar.nn.module import Module

__all__ = ["stage_layers", "PipelineStage", "run_step", "measured_bubble", "stage_costs",
           "check_against", "split_rows"]


def stage_layers(num_layers: int, stages: int, s: int) -> range:
    """Global LSTM layer indices of stage s: [floor(s L / S), floor((s+1) L / S))."""
    if num_layers < stages:
        raise ConfigError(f"{stages} stages need at least {stages} LSTM layers, got "
                          f"{num_layers} (--layers)")
    return range(s * num_layers // stages, (s + 1) * num_layers // stages)


def split_rows(batch: int, micro_batches: int) -> list[slice]:
    """Rows of each micro-batch; equal sizes, so every activation message has one size."""
    if micro_batches < 1 or batch % micro_batches:
        raise ConfigError(f"--batch {batch} must be a multiple of --micro-batches "
                          f"{micro_batches}")
    b = batch // micro_batches
    return [slice(m * b, (m + 1) * b) for m in range(micro_batches)]


class _StageLSTM(Module):
    """A stage's slice of the model's LSTM, its parameters named by *global* layer index
    (``weight_ih_l2`` on the stage holding layer 2), so names match the one-process model."""

    def __init__(self, lstm, layers: range):
        super().__init__()
        self.layers, self.fused, self.hidden = list(layers), lstm.fused, lstm.hidden_size
        for g in self.layers:
            for name in ("weight_ih", "weight_hh", "bias"):
                setattr(self, f"{name}_l{g}", getattr(lstm, f"{name}_l{g}"))

    def forward(self, x, state):
        weights = [(getattr(self, f"weight_ih_l{g}"), getattr(self, f"weight_hh_l{g}"),
                    getattr(self, f"bias_l{g}")) for g in self.layers]
        h0, c0 = state if state is not None else (None, None)
        if not self.fused:
            out, (h_n, c_n) = lstm_composed(x, h0, c0, weights)
            return out, (h_n.data, c_n.data)
        zeros = xp.zeros((x.shape[0], self.hidden), dtype=weights[0][1].dtype)
        out, hs, cs = x, [], []
        for k, (w_ih, w_hh, b) in enumerate(weights):
            out, h_n, c_n = LSTMLayer.apply(out, zeros if h0 is None else h0.data[k],
                                            zeros if c0 is None else c0.data[k], w_ih, w_hh, b)
            hs.append(h_n.data)
            cs.append(c_n.data)
        return out, (xp.stack(hs), xp.stack(cs))


class PipelineStage(Module):
    """Stage ``s`` of ``stages`` of an ``LSTMLM``, sharing the model's Parameter objects.

    Every rank builds the whole model from the same seed and keeps its slice, so stage
    parameters start with exactly the one-process model's values and carry its names
    (``embed.weight``, ``lstm.weight_ih_l1``, ``decoder.weight``...).
    """

    def __init__(self, model, s: int, stages: int):
        super().__init__()
        if stages > 1 and getattr(model, "tie_weights", False):
            raise ConfigError("tied weights put the embedding on the first and the last "
                              "stage: not supported by the pipeline")
        self.s, self.stages = s, stages
        self.first, self.last = s == 0, s == stages - 1
        self.vocab_size, self.hidden = model.vocab_size, model.hidden_size
        if self.first:
            self.embed = model.embed
        self.lstm = _StageLSTM(model.lstm, stage_layers(model.num_layers, stages, s))
        if self.last:
            self.decoder = model.decoder
        self.state: dict = {}    # micro-batch -> detached (h, c) of this stage's layers
        self._live: dict = {}    # micro-batch -> (input leaf or None, output or loss)

    def reset_state(self) -> None:
        self.state.clear()

    def forward_micro(self, m: int, inputs, targets=None, n_tokens: int = 1):
        """Forward of micro-batch m. ``inputs``: ids (b, T) on stage 0, else the received
        activation array (b, T, H). Returns the activation to send (host array), or on the
        last stage the micro-batch's loss (a float, already divided by ``n_tokens``)."""
        if self.first:
            x_leaf, x = None, self.embed(backend.from_numpy(inputs))
        else:
            x_leaf = Tensor(backend.from_numpy(inputs), requires_grad=True)
            x = x_leaf
        st = self.state.get(m)
        out, (h, c) = self.lstm(x, None if st is None else (Tensor(st[0]), Tensor(st[1])))
        self.state[m] = (h, c)  # plain arrays: the truncation point of truncated BPTT
        if not self.last:
            self._live[m] = (x_leaf, out)
            return np.ascontiguousarray(backend.to_numpy(out.data))
        b, T = out.shape[0], out.shape[1]
        logits = self.decoder(ops.reshape(out, (b * T, self.hidden)))
        flat = backend.from_numpy(targets).reshape(-1)
        loss = ops.cross_entropy(logits, flat, reduction="sum") * (1.0 / n_tokens)
        self._live[m] = (x_leaf, loss)
        return float(loss.item())

    def backward_micro(self, m: int, grad=None):
        """Backward of micro-batch m with ``grad`` = dL/d(output) (None on the last stage).
        Returns dL/d(input activation) to send upstream, or None on stage 0."""
        x_leaf, out = self._live.pop(m)
        if self.last:
            out.backward()
        else:
            out.backward(backend.from_numpy(grad))
        if x_leaf is None:
            return None
        return np.ascontiguousarray(backend.to_numpy(x_leaf.grad))


def run_step(comm, stage: PipelineStage, plan, ids, targets, origin: float | None = None):
    """One training step: walk this rank's actions of ``plan`` over the batch (ids, targets
    (B, T) host int arrays; stage 0 reads ids, the last stage targets).

    Returns (loss, spans): loss = sum of this stage's micro-batch losses (0 except on the
    last stage); spans = [(rank, start, end, label)] in seconds from ``origin`` (default:
    now), compute actions and blocking receives as they happened, for a Gantt chart.
    """
    M = plan.meta["micro_batches"]
    rows = split_rows(ids.shape[0], M)
    n_tokens = ids.shape[0] * ids.shape[1]
    shape = (rows[0].stop - rows[0].start, ids.shape[1], stage.hidden)
    dtype = np.dtype(stage.lstm.parameters()[0].dtype)
    tracer, r = comm.tracer, comm.rank
    origin = time.perf_counter() if origin is None else origin
    inbox, outbox, pending, spans = {}, {}, [], []
    loss = 0.0
    for a in plan.actions[r]:
        t0 = time.perf_counter()
        if a.op in ("forward", "backward"):
            m = a.task
            with tracer.compute(a.label):  # F3 / B3 on the trace's compute track
                if a.op == "forward":
                    x = ids[rows[m]] if stage.first else inbox.pop(2 * m)
                    y = targets[rows[m]] if stage.last else None
                    res = stage.forward_micro(m, x, y, n_tokens)
                    if stage.last:
                        loss += res
                    else:
                        outbox[2 * m] = res
                else:
                    res = stage.backward_micro(m, None if stage.last else inbox.pop(2 * m + 1))
                    if res is not None:
                        outbox[2 * m + 1] = res
        elif a.kind == "send":
            buf = outbox.pop(a.tag)
            what = "activation" if a.op == "send_act" else "gradient"
            pending.append((comm.isend(buf, a.peer, a.tag, note=f"{what} mb {a.tag // 2}"), buf))
        else:
            buf = np.empty(shape, dtype)
            what = "activation" if a.op == "recv_act" else "gradient"
            comm.recv(buf, a.peer, a.tag, note=f"{what} mb {a.tag // 2}")
            inbox[a.tag] = buf
        spans.append((r, t0 - origin, time.perf_counter() - origin, a.label))
    comm.waitall([req for req, _ in pending])
    return loss, spans


def measured_bubble(spans, p: int) -> tuple[float, float]:
    """(makespan, idle fraction) of measured spans: 1 - sum(compute) / (p * makespan), the
    same definition as the dry run's, with communication counted as idle."""
    end = max((s[2] for s in spans), default=0.0)
    start = min((s[1] for s in spans), default=0.0)
    busy = sum(e - b for _, b, e, lab in spans if lab[:1] in ("F", "B") and lab[1:].isdigit())
    span = end - start
    return span, (1.0 - busy / (p * span) if span > 0 else 0.0)


def stage_costs(spans) -> tuple[float, float]:
    """Mean seconds of one forward and one backward micro-batch in ``spans`` (one rank)."""
    f = [e - b for _, b, e, lab in spans if lab[:1] == "F" and lab[1:].isdigit()]
    g = [e - b for _, b, e, lab in spans if lab[:1] == "B" and lab[1:].isdigit()]
    return (sum(f) / max(len(f), 1), sum(g) / max(len(g), 1))


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / (scale if scale > 0 else 1.0)


def check_against(model, stage: PipelineStage, ids, targets, loss: float) -> dict:
    """Compare this stage's gradients (and, on the last stage, ``loss``) with one process:
    ``model`` (the full LSTMLM whose Parameters the stage shares) runs forward and backward
    on the whole batch from a zero state. Call right after the first ``run_step``.

    Returns {"loss": |L_pipe - L_ref| / |L_ref| (0 off the last stage), "grad": max over
    this stage's parameters of ||g_pipe - g_ref|| / ||g_ref||, "params": count}.
    """
    got = {n: backend.to_numpy(p.grad).copy() for n, p in stage.named_parameters()}
    model.zero_grad()
    n_tokens = ids.shape[0] * ids.shape[1]
    ref, _ = model.loss(backend.from_numpy(ids), backend.from_numpy(targets), reduction="sum")
    ref = ref * (1.0 / n_tokens)
    ref.backward()
    full = dict(model.named_parameters())
    errs = [_rel(g, backend.to_numpy(full[n].grad)) for n, g in got.items()]
    for n, p in full.items():  # leave the pipeline's gradients in place, as before the check
        p.grad = backend.from_numpy(got[n]) if n in got else None
    return {"loss": _rel(loss, ref.item()) if stage.last else 0.0,
            "grad": max(errs, default=0.0), "params": len(got)}
