"""Scheduling policies: pure functions of the task costs that every rank computes alike.

Every rank computes the same plan from the same inputs (no coordinator, no messages): ties
are broken by task id and rank, so ``mpiexec -n 4`` ranks agree on the plan without talking.

Policies: ``block`` (contiguous, equal counts), ``round_robin`` (task i on rank i mod p),
``lpt`` (longest processing time first: C <= (4/3 - 1/(3p)) C_opt, Graham 1969), ``padded``
(LPT when a rank's rows are padded to its longest, so its time is rows x longest) and
``list_schedule`` for task graphs (highest bottom level first, earliest start rank).
``get_scheduler`` hands out one of them by name, or a student's ``module:function``
(checked: every task once, one list per rank).

A scheduler ``plan(costs, p)`` returns, for each of the p ranks, the list of task indices it
runs (a :class:`~minipar.planning.plan.Plan` is accepted too). Every rank calls it with the
same costs, so it must be a pure function of its arguments: no clock, no unseeded
randomness, no iteration over a set of objects.
"""

from __future__ import annotations

import heapq

from minipar.core.errors import ConfigError
from minipar.core.plugins import load_callable
from minipar.planning.actions import PlanError, compute, recv, send
from minipar.planning.plan import Plan, check_costs, plan_bounds, topo_order

def _from_assignment(costs, p, ranks_tasks, policy) -> Plan:
    acts = [[compute(t, costs[t]) for t in sorted(ts)] for ts in ranks_tasks]
    bounds = plan_bounds(costs, p)
    return Plan(acts, policy, max(bounds.values(), default=0.0), {"bounds": bounds})


def block(costs, p: int) -> Plan:
    """Contiguous blocks of near-equal *count* (like numpy.array_split): blind to costs."""
    costs = check_costs(costs, p)
    n = len(costs)
    edges = [r * n // p for r in range(p + 1)]
    return _from_assignment(costs, p, [range(edges[r], edges[r + 1]) for r in range(p)], "block")


def round_robin(costs, p: int) -> Plan:
    """Task i on rank i mod p: even counts, still blind to costs."""
    costs = check_costs(costs, p)
    return _from_assignment(costs, p, [range(r, len(costs), p) for r in range(p)], "round_robin")


def lpt(costs, p: int) -> Plan:
    """Longest processing time first: sort by cost (descending), give each task to the
    least-loaded rank. Graham's bound: C_LPT <= (4/3 - 1/(3p)) * C_opt.

    Ties go to the lower task id and the lower rank, so every rank builds the same plan.
    """
    costs = check_costs(costs, p)
    heap = [(0.0, r) for r in range(p)]  # (load, rank): the least-loaded rank pops first
    owned: list[list[int]] = [[] for _ in range(p)]
    for t in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, r = heapq.heappop(heap)
        owned[r].append(t)
        heapq.heappush(heap, (load + costs[t], r))
    return _from_assignment(costs, p, owned, "lpt")


def padded(costs, p: int) -> Plan:
    """The best plan when a rank's rows are padded to its longest (the classifier's batches):
    a rank holding rows R takes T_r = |R| * max_{t in R} c_t, and the plan minimises
    max_r T_r exactly.

    Sort the rows longest first. Some best plan gives each rank a run of that order: if
    ranks are numbered by their longest row M_1 >= M_2 >= ..., every row longer than M_k
    lies on ranks 1..k-1, so handing rank 1 the first n_1 rows, rank 2 the next n_2 and so
    on never raises a rank's longest row. A time T is reachable when runs, each as long as
    its first row allows (floor(T / c_first) rows), cover the rows with at most p runs;
    bisection finds the least such T. Ranks left without a run get halves of the longest
    runs (halving never slows a run). Ties: lower task id first.
    """
    costs = check_costs(costs, p)
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    c = [float(costs[t]) for t in order]

    def runs(limit):
        out, i = [], 0
        while i < len(c) and len(out) <= p:
            k = len(c) - i if c[i] <= 0 else int(limit / c[i] * (1 + 1e-12))
            out.append([i, i + min(max(k, 1), len(c) - i)])
            i = out[-1][1]
        return out

    lo, hi = 0.0, len(c) * (c[0] if c else 0.0)
    for _ in range(60):  # a pure function of the costs: every rank finds the same T
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if len(runs(mid)) <= p else (mid, hi)
    segs = runs(hi)
    while len(segs) < p and any(b - a > 1 for a, b in segs):
        k = max(range(len(segs)), key=lambda q: (segs[q][1] - segs[q][0], -q))
        a, b = segs[k]
        segs[k:k + 1] = [[a, (a + b + 1) // 2], [(a + b + 1) // 2, b]]
    owned = [[order[i] for i in range(a, b)] for a, b in segs] + [[]] * (p - len(segs))
    return _from_assignment(costs, p, owned, "padded")


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
    costs = check_costs(costs, p)
    n = len(costs)
    preds, succs, order = topo_order(n, deps)
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
    bounds = plan_bounds(costs, p, deps)
    return Plan(acts, "list", max(bounds.values(), default=0.0), {"bounds": bounds})


POLICIES = {"block": block, "round_robin": round_robin, "lpt": lpt}
# for --shard balanced; not in POLICIES, whose plans are judged by summed cost
SHARD_POLICIES = {**POLICIES, "padded": padded}


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


SCHEDULERS = ("lpt", "padded", "block", "round_robin")


def plan_tasks(result, p: int, n: int) -> list[list[int]]:
    """A scheduler's answer as p lists of task indices; checks that every task appears once.

    ``result`` is a Plan or a sequence of p sequences of ints. Raises ValueError saying what
    is wrong (the grader shows the message to the student).
    """
    if hasattr(result, "actions") and hasattr(result, "tasks"):
        result = [result.tasks(r) for r in range(result.p)]
    try:
        lists = [[int(t) for t in ts] for ts in result]
    except (TypeError, ValueError):
        raise ValueError(f"expected a list of {p} lists of task indices, got "
                         f"{type(result).__name__}") from None
    if len(lists) != p:
        raise ValueError(f"expected one list per rank ({p}), got {len(lists)}")
    seen = sorted(t for ts in lists for t in ts)
    if seen != list(range(n)):
        missing = sorted(set(range(n)) - set(seen))
        extra = sorted({t for t in seen if not 0 <= t < n or seen.count(t) > 1})
        raise ValueError(f"every task 0..{n - 1} must appear exactly once"
                         + (f"; missing {missing[:5]}" if missing else "")
                         + (f"; repeated or unknown {extra[:5]}" if extra else ""))
    return lists


def get_scheduler(name: str):
    """``plan(costs, p) -> list of task lists``: one of :data:`SCHEDULERS` or module:function.

    Wrapped so the answer is checked (every task once, one list per rank) before use.
    """
    if name in SCHEDULERS:
        policy = name

        def builtin(costs, p):
            return SHARD_POLICIES[policy](costs, p)
        func = builtin
    else:
        func = load_callable(name, "scheduler")

    def checked(costs, p):
        try:
            return plan_tasks(func(list(costs), p), p, len(costs))
        except ValueError as exc:
            raise ConfigError(f"scheduler {name!r}: {exc}") from None
    return checked
