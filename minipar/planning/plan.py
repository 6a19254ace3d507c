"""A static plan: every rank's ordered actions, fixed before execution, the same on every rank.

A *plan* gives every rank an ordered list of actions::

    compute(task, cost)          run task ``task`` (estimated ``cost`` seconds, or any unit)
    send(peer, tag, nbytes)      blocking send to ``peer``
    recv(peer, tag, nbytes)      blocking receive from ``peer``

Every rank computes the same plan from the same inputs (no coordinator, no messages): the
policies below are pure functions of the task costs, with ties broken by task id and rank,
so ``mpiexec -n 4`` ranks agree on the plan without talking.

Quality of a plan on p ranks with task costs c_i (docs/scheduling.md has the proofs):

    makespan  C    = time at which the last rank finishes (communication free)
    lower bound LB = max( sum(c)/p, max(c), critical path )     no schedule beats LB
    imbalance      = L_max / L_mean - 1                          0 means perfectly even loads

The policies that build plans are in :mod:`minipar.planning.policies`, the actions in
:mod:`minipar.planning.actions`, the dry run in :mod:`minipar.planning.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minipar.planning.actions import Action, PlanError
from minipar.planning.simulate import simulate

__all__ = ["Plan", "check_costs", "critical_path", "lower_bound", "plan_bounds",
           "topo_order", "execute_plan"]


@dataclass
class Plan:
    """Per-rank ordered action lists plus what the policy knew (bounds, names) in ``meta``."""

    actions: list[list[Action]]
    policy: str = "custom"
    lower_bound: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.lower_bound is None:
            costs = [a.cost for acts in self.actions for a in acts if a.kind == "compute"]
            self.lower_bound = lower_bound(costs, self.p)
        self._makespan = None

    @property
    def p(self) -> int:
        return len(self.actions)

    def tasks(self, rank: int) -> list[int]:
        """Task ids (or micro-batches) that ``rank`` computes, in plan order."""
        return [a.task for a in self.actions[rank] if a.kind == "compute"]

    @property
    def owner(self) -> dict[int, int]:
        """task id -> rank."""
        return {t: r for r in range(self.p) for t in self.tasks(r)}

    @property
    def loads(self) -> list[float]:
        """Sum of compute costs per rank (L_r)."""
        return [sum(a.cost for a in acts if a.kind == "compute") for acts in self.actions]

    @property
    def makespan(self) -> float:
        """Finish time of the last rank with free, buffered communication (simulated once)."""
        if self._makespan is None:
            self._makespan = simulate(self, mode="eager").makespan
        return self._makespan

    @property
    def imbalance(self) -> float:
        """L_max / L_mean - 1 (0 = every rank has the same load)."""
        loads = self.loads
        mean = sum(loads) / max(len(loads), 1)
        return max(loads) / mean - 1.0 if mean > 0 else 0.0

    def summary(self) -> str:
        """A printable per-rank table and the plan's makespan against its lower bound."""
        loads, span = self.loads, self.makespan
        n = sum(len(self.tasks(r)) for r in range(self.p))
        lines = [f"plan: {self.policy}, {self.p} ranks, {n} compute actions",
                 f"{'rank':>4} {'tasks':>6} {'load':>12} {'idle':>12} {'msgs':>5}"]
        for r, acts in enumerate(self.actions):
            msgs = sum(a.kind != "compute" for a in acts)
            lines.append(f"{r:>4} {len(self.tasks(r)):>6} {loads[r]:>12.4g} "
                         f"{span - loads[r]:>12.4g} {msgs:>5}")
        lb = self.lower_bound or 0.0
        ratio = span / lb if lb > 0 else 1.0
        parts = ", ".join(f"{k} {v:.4g}" for k, v in self.meta.get("bounds", {}).items())
        lines.append(f"makespan {span:.4g}  lower bound {lb:.4g}" + (f" ({parts})" if parts else "")
                     + f"  ratio {ratio:.3f}  imbalance {100 * self.imbalance:.1f}%")
        return "\n".join(lines)


def check_costs(costs, p: int) -> list[float]:
    if int(p) < 1:
        raise PlanError(f"need at least one rank, got p={p}")
    out = [float(c) for c in costs]
    for i, c in enumerate(out):
        if not c >= 0:  # also rejects NaN
            raise PlanError(f"task {i} has cost {c}: costs must be >= 0")
    return out


def topo_order(n: int, deps) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Predecessor/successor lists and a topological order (Kahn); a cycle is an error."""
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for v, us in (deps or {}).items():
        for u in us:
            if not (0 <= u < n and 0 <= v < n) or u == v:
                raise PlanError(f"bad dependency {u} -> {v} for {n} tasks")
            if u not in preds[v]:
                preds[v].append(u)
                succs[u].append(v)
    indeg = [len(x) for x in preds]
    order = [i for i in range(n) if indeg[i] == 0]
    for u in order:  # the list grows while we walk it
        for v in succs[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                order.append(v)
    if len(order) < n:
        stuck = min(i for i in range(n) if indeg[i] > 0)
        raise PlanError(f"task graph has a cycle (task {stuck} can never become ready)")
    return preds, succs, order


def critical_path(costs, deps=None) -> tuple[float, list[int]]:
    """Longest path through the task graph, weighted by cost: (length, task ids on it)."""
    costs = check_costs(costs, 1)
    if not costs:
        return 0.0, []
    preds, _, order = topo_order(len(costs), deps)
    dist, back = [0.0] * len(costs), [-1] * len(costs)
    for v in order:  # dist[v] = c_v + max over predecessors
        best = max(preds[v], key=lambda u: (dist[u], -u), default=-1)
        dist[v] = costs[v] + (dist[best] if best >= 0 else 0.0)
        back[v] = best
    v = max(range(len(costs)), key=lambda i: (dist[i], -i))
    length, path = dist[v], []
    while v >= 0:
        path.append(v)
        v = back[v]
    return length, path[::-1]


def plan_bounds(costs, p, deps=None) -> dict[str, float]:
    return {"total/p": sum(costs) / p, "largest": max(costs, default=0.0),
            "critical path": critical_path(costs, deps)[0]}


def lower_bound(costs, p: int, deps=None) -> float:
    """LB = max(sum(c)/p, max(c), critical path): every schedule takes at least this long."""
    costs = check_costs(costs, p)
    return max(plan_bounds(costs, p, deps).values(), default=0.0)


def execute_plan(comm, plan: Plan, run_task, combine: str | None = "allgather") -> dict:
    """Run this rank's actions of ``plan`` through the traced communicator ``comm``.

    ``run_task(task, results)`` computes one task; ``results`` holds every result this rank
    has (its own and received ones), keyed by task id. A ``send`` ships ``results[tag]``
    (a NumPy array of exactly ``nbytes`` bytes) to its peer; a ``recv`` stores a uint8 buffer
    of ``nbytes`` under ``results[tag]`` (view it with the dtype you sent). Sends are
    non-blocking (``isend``, all waited at the end): the buffered semantics the dry run
    predicts times for; the plan was already checked deadlock-free with blocking sends.

    ``combine``: "allgather" (every rank gets every task's result), "gather" (rank 0 does,
    others get their own) or None. Pipeline plans use their own loop (forward/backward need
    the model), but follow the same action order.
    """
    if plan.p != comm.size:
        raise PlanError(f"plan is for {plan.p} ranks, but the job has {comm.size}")
    results: dict = {}
    mine, pending = [], []
    for a in plan.actions[comm.rank]:
        if a.kind == "compute":
            with comm.tracer.compute(a.label):
                results[a.task] = run_task(a.task, results)
            mine.append(a.task)
        elif a.kind == "send":
            buf = np.ascontiguousarray(results[a.tag])
            if buf.nbytes != a.nbytes:
                raise PlanError(f"rank {comm.rank}: result of task {a.tag} has {buf.nbytes} "
                                f"bytes, the plan says {a.nbytes}")
            pending.append((comm.isend(buf, a.peer, a.tag), buf))  # keep buf alive until done
        else:
            buf = np.empty(a.nbytes, np.uint8)
            comm.recv(buf, a.peer, a.tag)
            results[a.tag] = buf
    comm.waitall([req for req, _ in pending])
    own = {t: results[t] for t in mine}
    if combine == "allgather":
        return {t: v for part in comm.allgather_obj(own) for t, v in part.items()}
    if combine == "gather":
        parts = comm.gather_obj(own, 0)
        return {t: v for part in parts for t, v in part.items()} if parts else own
    return own
