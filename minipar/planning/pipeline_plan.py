"""Pipeline-parallel schedules as static per-rank plans: GPipe and 1F1B.

The model is cut by layers into S stages, one per rank; a batch is cut into M micro-batches.
Stage s runs ``forward(m)`` and ``backward(m)`` for every micro-batch m, receives
activations from s-1 and sends its own to s+1 (``recv_act``/``send_act``), and passes
gradients the other way (``recv_grad``/``send_grad``). Tags: 2m for activations, 2m+1 for
gradients, so a trace names the micro-batch of every message.

GPipe
    All M forwards, then all M backwards (last micro-batch first). Every stage keeps the
    activations of all M micro-batches until its backward pass.
1F1B
    Stage s first runs w_s = min(S-s-1, M) forwards (warm-up), then alternates one forward
    and one backward (steady state), then drains the remaining backwards. At most w_s + 1
    micro-batches are in flight on stage s instead of M: same bubble, far less memory.

With forward cost f and backward cost b on every stage and free messages, both take
(M + S - 1)(f + b), while each stage is busy M(f + b), so the idle fraction (the bubble) is

    bubble = (S - 1) / (M + S - 1)

which only a larger M shrinks. The lower bound below shows no schedule can do better:
stage s cannot start before micro-batch 0 crossed stages 0..s-1 and must hand its last
gradient back through them.
"""

from __future__ import annotations

from minipar.planning.actions import Action, PlanError
from minipar.planning.plan import Plan

__all__ = ["gpipe", "one_f_one_b", "pipeline_plan", "bubble_fraction", "in_flight"]


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """(S - 1) / (M + S - 1): the idle share of a pipeline with equal stages."""
    return (stages - 1) / (micro_batches + stages - 1)


def _per_stage(x, stages: int, name: str) -> list[float]:
    vals = [float(x)] * stages if isinstance(x, (int, float)) else [float(v) for v in x]
    if len(vals) != stages or any(not v >= 0 for v in vals):
        raise PlanError(f"{name} needs one cost >= 0 per stage ({stages}), got {x!r}")
    return vals


def _check(stages: int, micro_batches: int) -> None:
    if stages < 1 or micro_batches < 1:
        raise PlanError(f"need stages >= 1 and micro-batches >= 1, got {stages}, {micro_batches}")


class _Stage:
    """Builds one stage's action list: the neighbour messages wrap each compute."""

    def __init__(self, s, S, f, b, nbytes):
        self.s, self.S, self.f, self.b, self.n = s, S, f, b, nbytes
        self.acts: list[Action] = []

    def add(self, op, m, peer=-1):
        tag = 2 * m + (op.endswith("grad"))
        if op in ("forward", "backward"):
            cost = self.f if op == "forward" else self.b
            self.acts.append(Action(op, task=m, cost=cost))
        elif 0 <= peer < self.S:  # the first/last stage has no neighbour on one side
            self.acts.append(Action(op, peer=peer, tag=tag, nbytes=self.n))

    def fwd(self, m, send=True):
        self.add("recv_act", m, self.s - 1)
        self.add("forward", m)
        if send:
            self.add("send_act", m, self.s + 1)

    def bwd(self, m, recv=True):
        if recv:
            self.add("recv_grad", m, self.s + 1)
        self.add("backward", m)
        self.add("send_grad", m, self.s - 1)


def _plan(stages, micro_batches, fwd, bwd, acts, name) -> Plan:
    f = _per_stage(fwd, stages, "fwd")
    b = _per_stage(bwd, stages, "bwd")
    per = [sum(f[:s]) + micro_batches * (f[s] + b[s]) + sum(b[:s]) for s in range(stages)]
    bounds = {"stage s path": max(per), "largest stage": micro_batches * max(
        fi + bi for fi, bi in zip(f, b))}
    meta = {"bounds": bounds, "stages": stages, "micro_batches": micro_batches,
            "bubble (equal stages)": bubble_fraction(stages, micro_batches)}
    return Plan(acts, name, max(bounds.values()), meta)


def gpipe(stages: int, micro_batches: int, fwd=1.0, bwd=2.0, act_bytes: int = 0) -> Plan:
    """GPipe: all forwards, then all backwards. ``fwd``/``bwd``: cost per micro-batch
    (one number, or one per stage); ``act_bytes``: size of one activation/gradient message."""
    _check(stages, micro_batches)
    f = _per_stage(fwd, stages, "fwd")
    b = _per_stage(bwd, stages, "bwd")
    acts = []
    for s in range(stages):
        st = _Stage(s, stages, f[s], b[s], act_bytes)
        for m in range(micro_batches):
            st.fwd(m)
        for m in reversed(range(micro_batches)):
            st.bwd(m)
        acts.append(st.acts)
    return _plan(stages, micro_batches, f, b, acts, "gpipe")


def one_f_one_b(stages: int, micro_batches: int, fwd=1.0, bwd=2.0, act_bytes: int = 0,
                pair_exchange: bool = True) -> Plan:
    """1F1B (PipeDream-flush): warm-up forwards, one-forward-one-backward, drain.

    In the steady state stage s must send activation i to s+1 while s+1 sends gradient k
    back. With blocking sends done in the naive order (send_act, then recv_grad) both
    neighbours send first and wait on each other forever under rendezvous. With
    ``pair_exchange`` (default) stage s receives gradient k *before* sending activation i;
    s+1 needs that activation only after sending the gradient, so nothing is delayed.
    (Megatron-LM does the same exchange with one batched isend/irecv.)
    """
    _check(stages, micro_batches)
    f = _per_stage(fwd, stages, "fwd")
    b = _per_stage(bwd, stages, "bwd")
    acts = []
    for s in range(stages):
        st = _Stage(s, stages, f[s], b[s], act_bytes)
        warm = min(stages - s - 1, micro_batches)
        for m in range(warm):
            st.fwd(m)
        for k in range(micro_batches - warm):
            i = warm + k
            if pair_exchange:
                st.fwd(i, send=False)
                st.add("recv_grad", k, s + 1)
                st.add("send_act", i, s + 1)
                st.bwd(k, recv=False)
            else:
                st.fwd(i)
                st.bwd(k)
        for k in range(micro_batches - warm, micro_batches):
            st.bwd(k)
        acts.append(st.acts)
    return _plan(stages, micro_batches, f, b, acts, "1f1b")


def pipeline_plan(schedule: str, stages: int, micro_batches: int, **kw) -> Plan:
    """``gpipe`` or ``1f1b`` by name."""
    makers = {"gpipe": gpipe, "1f1b": one_f_one_b}
    if schedule not in makers:
        raise PlanError(f"unknown pipeline schedule {schedule!r}: use gpipe or 1f1b")
    return makers[schedule](stages, micro_batches, **kw)


def in_flight(plan: Plan) -> list[int]:
    """Peak number of micro-batches whose activations a stage holds (forward done, backward
    not yet): M for GPipe, min(S - s, M) for 1F1B."""
    peaks = []
    for acts in plan.actions:
        live = peak = 0
        for a in acts:
            live += (a.op == "forward") - (a.op == "backward")
            peak = max(peak, live)
        peaks.append(peak)
    return peaks
