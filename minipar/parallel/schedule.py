"""Static task scheduling: a plan fixed before execution, the same on every rank.

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

Policies: ``block`` (contiguous, equal counts), ``round_robin`` (task i on rank i mod p),
``lpt`` (longest processing time first: C <= (4/3 - 1/(3p)) C_opt, Graham 1969) and
``list_schedule`` for task graphs (highest bottom level first, earliest start rank).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from minipar.errors import UserError

__all__ = [
    "Action", "Plan", "PlanError", "compute", "send", "recv",
    "block", "round_robin", "lpt", "list_schedule", "make_plan", "POLICIES",
    "critical_path", "lower_bound", "balanced_shards", "assign_grid", "execute_plan",
]

# The simulator and the executor need only know which of three things an action is;
# pipeline plans use named variants (forward, send_act, ...) so traces read naturally.
COMPUTE_OPS = frozenset({"compute", "forward", "backward"})
SEND_OPS = frozenset({"send", "send_act", "send_grad"})
RECV_OPS = frozenset({"recv", "recv_act", "recv_grad"})
_SHORT = {"compute": "T", "forward": "F", "backward": "B"}


class PlanError(UserError):
    """A plan or task graph that cannot run (bad peer, cycle, unmatched message, deadlock)."""


@dataclass(frozen=True)
class Action:
    """One step of one rank's plan. ``task`` is a task id or a micro-batch index."""

    op: str
    task: int = -1
    cost: float = 0.0
    peer: int = -1
    tag: int = 0
    nbytes: int = 0

    @property
    def kind(self) -> str:
        """``compute``, ``send`` or ``recv``: what the simulator and executor dispatch on."""
        if self.op in COMPUTE_OPS:
            return "compute"
        if self.op in SEND_OPS:
            return "send"
        if self.op in RECV_OPS:
            return "recv"
        raise PlanError(f"unknown action {self.op!r}")

    @property
    def label(self) -> str:
        """Short name for charts: T5 (task 5), F3/B3 (micro-batch 3), send->1, recv<-0."""
        if self.kind == "compute":
            return f"{_SHORT[self.op]}{self.task}"
        arrow = "->" if self.kind == "send" else "<-"
        return f"{self.op}{arrow}{self.peer}"

    def __str__(self) -> str:
        if self.kind == "compute":
            return f"{self.op}(task={self.task}, cost={self.cost:g})"
        return f"{self.op}(peer={self.peer}, tag={self.tag}, nbytes={self.nbytes})"


def compute(task: int, cost: float) -> Action:
    return Action("compute", task=task, cost=float(cost))


def send(peer: int, tag: int = 0, nbytes: int = 0) -> Action:
    return Action("send", peer=peer, tag=tag, nbytes=int(nbytes))


def recv(peer: int, tag: int = 0, nbytes: int = 0) -> Action:
    return Action("recv", peer=peer, tag=tag, nbytes=int(nbytes))


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
            # Imported here: the simulator is built on Action/Plan from this module.
            from minipar.parallel.simulate import simulate
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


def _check_costs(costs, p: int) -> list[float]:
    if int(p) < 1:
        raise PlanError(f"need at least one rank, got p={p}")
    out = [float(c) for c in costs]
    for i, c in enumerate(out):
        if not c >= 0:  # also rejects NaN
            raise PlanError(f"task {i} has cost {c}: costs must be >= 0")
    return out


def _topo_order(n: int, deps) -> tuple[list[list[int]], list[list[int]], list[int]]:
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
    costs = _check_costs(costs, 1)
    if not costs:
        return 0.0, []
    preds, _, order = _topo_order(len(costs), deps)
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


def _bounds(costs, p, deps=None) -> dict[str, float]:
    return {"total/p": sum(costs) / p, "largest": max(costs, default=0.0),
            "critical path": critical_path(costs, deps)[0]}


def lower_bound(costs, p: int, deps=None) -> float:
    """LB = max(sum(c)/p, max(c), critical path): every schedule takes at least this long."""
    costs = _check_costs(costs, p)
    return max(_bounds(costs, p, deps).values(), default=0.0)


def _from_assignment(costs, p, ranks_tasks, policy) -> Plan:
    acts = [[compute(t, costs[t]) for t in sorted(ts)] for ts in ranks_tasks]
    bounds = _bounds(costs, p)
    return Plan(acts, policy, max(bounds.values(), default=0.0), {"bounds": bounds})


def block(costs, p: int) -> Plan:
    """Contiguous blocks of near-equal *count* (like numpy.array_split): blind to costs."""
    costs = _check_costs(costs, p)
    n = len(costs)
    edges = [r * n // p for r in range(p + 1)]
    return _from_assignment(costs, p, [range(edges[r], edges[r + 1]) for r in range(p)], "block")


def round_robin(costs, p: int) -> Plan:
    """Task i on rank i mod p: even counts, still blind to costs."""
    costs = _check_costs(costs, p)
    return _from_assignment(costs, p, [range(r, len(costs), p) for r in range(p)], "round_robin")


def lpt(costs, p: int) -> Plan:
    """Longest processing time first: sort by cost (descending), give each task to the
    least-loaded rank. Graham's bound: C_LPT <= (4/3 - 1/(3p)) * C_opt.

    Ties go to the lower task id and the lower rank, so every rank builds the same plan.
    """
    costs = _check_costs(costs, p)
    heap = [(0.0, r) for r in range(p)]  # (load, rank): the least-loaded rank pops first
    owned: list[list[int]] = [[] for _ in range(p)]
    for t in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, r = heapq.heappop(heap)
        owned[r].append(t)
        heapq.heappush(heap, (load + costs[t], r))
    return _from_assignment(costs, p, owned, "lpt")


def list_schedule(costs, deps, p: int, nbytes=0, alpha: float = 0.0, beta: float = 0.0) -> Plan:
    """List scheduling of a task graph (HLFET): repeatedly take the ready task with the
    highest bottom level b(v) = c_v + max_{v->w} b(w) and place it on the rank where it can
    start earliest, counting alpha + beta * nbytes[u] for each input u made on another rank.

    ``deps`` maps a task to the tasks it needs: {v: [u, ...]}. Each cross-rank edge becomes
    one send on the producer's rank and one recv on the consumer's. All messages are ordered
    by one global key (producer finish time, decision order), and every rank performs its
    messages in that order, so the plan cannot deadlock even when sends block until
    received (the lowest unfinished message always has both ends ready for it).
    """
    costs = _check_costs(costs, p)
    n = len(costs)
    preds, succs, order = _topo_order(n, deps)
    size = [int(nbytes)] * n if isinstance(nbytes, (int, float)) else [int(b) for b in nbytes]
    blevel = [0.0] * n
    for v in reversed(order):
        blevel[v] = costs[v] + max((blevel[w] for w in succs[v]), default=0.0)
    indeg = [len(x) for x in preds]
    ready = [(-blevel[v], v) for v in range(n) if indeg[v] == 0]
    heapq.heapify(ready)
    free = [0.0] * p
    start, finish, owner, seq = [0.0] * n, [0.0] * n, [-1] * n, [0] * n
    for k in range(n):
        _, v = heapq.heappop(ready)
        best = None
        for r in range(p):
            data = max((finish[u] + (0.0 if owner[u] == r else alpha + beta * size[u])
                        for u in preds[v]), default=0.0)
            st = max(free[r], data)
            if best is None or st < best[0]:
                best = (st, r)
        start[v], owner[v], seq[v] = best[0], best[1], k
        finish[v] = free[best[1]] = best[0] + costs[v]
        for w in succs[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(ready, (-blevel[w], w))
    keyed: list[list[tuple]] = [[] for _ in range(p)]
    for v in range(n):
        keyed[owner[v]].append(((start[v], seq[v], -1), compute(v, costs[v])))
        for r in sorted({owner[w] for w in succs[v]} - {owner[v]}):
            key = (finish[v], seq[v] + 0.5, r)  # right after v, before any consumer of v
            keyed[owner[v]].append((key, send(r, tag=v, nbytes=size[v])))
            keyed[r].append((key, recv(owner[v], tag=v, nbytes=size[v])))
    acts = [[a for _, a in sorted(ops, key=lambda x: x[0])] for ops in keyed]
    bounds = _bounds(costs, p, deps)
    return Plan(acts, "list", max(bounds.values(), default=0.0), {"bounds": bounds})


POLICIES = {"block": block, "round_robin": round_robin, "lpt": lpt}


def make_plan(costs, p: int, policy: str = "lpt", deps=None) -> Plan:
    """Dispatch by name: block, round_robin, lpt, or list (needs or allows ``deps``)."""
    if policy == "list" or deps:
        return list_schedule(costs, deps or {}, p)
    if policy not in POLICIES:
        raise PlanError(f"unknown policy {policy!r}: use one of {', '.join([*POLICIES, 'list'])}")
    return POLICIES[policy](costs, p)


def balanced_shards(sizes, p: int, policy: str = "lpt") -> list[list[int]]:
    """Document (or shard) indices for each rank, balancing total size (``--shard balanced``).

    Returns p ascending lists covering every index once. Same inputs, same answer on every
    rank, so each rank just takes ``balanced_shards(sizes, size)[rank]``.
    """
    plan = make_plan(sizes, p, policy)
    return [plan.tasks(r) for r in range(p)]


def assign_grid(jobs, p: int, costs=None) -> list[list[int]]:
    """Spread a grid of independent jobs over ranks by LPT; returns job indices per rank.

    ``costs`` is a list, a function job -> estimated cost, or None (all equal).
    """
    jobs = list(jobs)
    if costs is None:
        costs = [1.0] * len(jobs)
    elif callable(costs):
        costs = [costs(j) for j in jobs]
    return balanced_shards(costs, p)


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
    import numpy as np

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
