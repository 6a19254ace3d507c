"""Dry run of a plan: no computing, only clocks. Finds deadlocks and predicts a timeline.

Each rank has a clock and a program counter over its action list. The simulation repeatedly
advances any rank whose next action can complete; it stops when every rank is done (success)
or when no rank can move (deadlock). Times come from the plan and the cost model:

    compute(task, cost)   takes ``cost``
    a message of n bytes  takes alpha + beta * n              (Hockney / alpha-beta model)

Two send semantics, chosen with ``mode``:

``rendezvous`` (default, the strict check)
    A send completes only together with its matching receive (MPI_Ssend). Both ranks must
    have reached the pair; the transfer starts at max(t_sender, t_receiver) and both clocks
    end at start + alpha + beta * n. MPI may always behave like this for large messages, so
    a plan that passes here runs under any MPI buffering.
``eager``
    A send deposits the message and returns after alpha + beta * n (MPI_Bsend, or a small
    message under MPICH's eager protocol); a receive completes at max(t_receiver, arrival).
    Only receives can block.

Messages match by (source, destination, tag) in order, as in MPI. The result is the same
whatever order ranks are visited in: every time is a max or a sum of earlier times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from minipar.planning.actions import Action, PlanError

__all__ = ["simulate", "verify", "SimResult", "DeadlockError"]


class DeadlockError(PlanError):
    """No rank can move. ``ranks`` is the pair at fault, ``actions`` the blocked actions
    as (rank, index in that rank's list, Action)."""

    def __init__(self, message: str, ranks: tuple, actions: list):
        super().__init__(message)
        self.ranks = ranks
        self.actions = actions


@dataclass
class SimResult:
    """Predicted timeline. ``spans`` holds (rank, start, end, label) for every action."""

    p: int
    makespan: float
    spans: list[tuple[int, float, float, str]] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)   # compute time per rank
    comm: list[float] = field(default_factory=list)   # time inside transfers per rank
    messages: int = 0
    nbytes: int = 0
    mode: str = "rendezvous"

    @property
    def bubble(self) -> float:
        """Idle fraction: 1 - sum(busy) / (p * makespan). For GPipe/1F1B with S equal stages,
        M micro-batches and free messages this is (S-1)/(M+S-1)."""
        total = self.p * self.makespan
        return 1.0 - sum(self.busy) / total if total > 0 else 0.0

    def table(self) -> str:
        lines = [f"{'rank':>4} {'compute':>12} {'comm':>12} {'idle':>12}"]
        for r in range(self.p):
            idle = self.makespan - self.busy[r] - self.comm[r]
            lines.append(f"{r:>4} {self.busy[r]:>12.4g} {self.comm[r]:>12.4g} {idle:>12.4g}")
        lines.append(f"makespan {self.makespan:.4g}  bubble {100 * self.bubble:.1f}%  "
                     f"messages {self.messages} ({self.nbytes} bytes), {self.mode} sends")
        return "\n".join(lines)


def _pairs(a: Action, b: Action) -> bool:
    """Do these two ops belong together (send_act with recv_act, send with recv)?"""
    return a.op[4:] == b.op[4:]


def _check(actions: list[list[Action]]) -> None:
    p = len(actions)
    for r, acts in enumerate(actions):
        for i, a in enumerate(acts):
            if a.kind != "compute" and not (0 <= a.peer < p and a.peer != r):
                raise PlanError(f"rank {r} action {i} {a}: peer must be another rank in 0..{p - 1}")
            if a.kind == "compute" and not a.cost >= 0:
                raise PlanError(f"rank {r} action {i} {a}: negative cost")


def simulate(plan, mode: str = "rendezvous", alpha: float = 0.0, beta: float = 0.0,
             params=None) -> SimResult:
    """Run ``plan`` (a Plan or a list of per-rank action lists) on clocks only.

    ``params`` may be any object with ``alpha`` and ``beta`` (a costmodel.CostParams) and
    overrides the two numbers. Raises DeadlockError naming the ranks and actions at fault,
    or PlanError for a message that is sent and never received or sizes that disagree.
    """
    actions = plan.actions if hasattr(plan, "actions") else [list(a) for a in plan]
    if mode not in ("rendezvous", "eager"):
        raise PlanError(f"unknown mode {mode!r}: use 'rendezvous' or 'eager'")
    if params is not None:
        alpha, beta = params.alpha, params.beta
    _check(actions)
    p = len(actions)
    pc, t = [0] * p, [0.0] * p
    res = SimResult(p, 0.0, busy=[0.0] * p, comm=[0.0] * p, mode=mode)
    queues: dict[tuple, deque] = {}   # eager: (src, dst, tag) -> deque of (start, arrival, a)

    def head(r):
        return actions[r][pc[r]] if pc[r] < len(actions[r]) else None

    def agree(r, a, q, b):
        if not _pairs(a, b) or a.nbytes != b.nbytes:
            raise PlanError(f"rank {r} {a} is matched by rank {q} {b}: kinds or sizes differ")

    def span(r, s, e, a):
        res.spans.append((r, s, e, a.label))

    def step(r) -> bool:
        """Complete rank r's next action if it can; True on progress."""
        a = head(r)
        if a.kind == "compute":
            span(r, t[r], t[r] + a.cost, a)
            t[r] += a.cost
            res.busy[r] += a.cost
            pc[r] += 1
            return True
        cost = alpha + beta * a.nbytes
        if mode == "eager" and a.kind == "send":
            queues.setdefault((r, a.peer, a.tag), deque()).append((t[r], t[r] + cost, a))
            span(r, t[r], t[r] + cost, a)
            t[r] += cost
            res.comm[r] += cost
            res.messages += 1
            res.nbytes += a.nbytes
            pc[r] += 1
            return True
        if mode == "eager":  # a receive: wait for the message to arrive
            box = queues.get((a.peer, r, a.tag))
            if not box:
                return False
            sent, arrival, b = box.popleft()
            agree(a.peer, b, r, a)
            begin, t[r] = max(t[r], sent), max(t[r], arrival)
            span(r, begin, t[r], a)
            res.comm[r] += t[r] - begin
            pc[r] += 1
            return True
        q, b = a.peer, head(a.peer)   # rendezvous: both ends must be at the pair
        if b is None or b.kind == a.kind or b.peer != r or b.tag != a.tag:
            return False
        agree(r, a, q, b)
        begin = max(t[r], t[q])
        for x, act in ((r, a), (q, b)):
            span(x, begin, begin + cost, act)
            t[x] = begin + cost
            res.comm[x] += cost
            pc[x] += 1
        res.messages += 1
        res.nbytes += a.nbytes
        return True

    moved = True
    while moved:
        moved = False
        for r in range(p):
            while pc[r] < len(actions[r]) and step(r):
                moved = True
    if any(pc[r] < len(actions[r]) for r in range(p)):
        raise _deadlock(actions, pc, mode)
    for (src, dst, tag), box in queues.items():
        if box:
            raise PlanError(f"rank {src} {box[0][2]} is never received by rank {dst} "
                            f"({len(box)} message(s) with tag {tag} left over)")
    res.makespan = max(t, default=0.0)
    return res


def _deadlock(actions, pc, mode) -> DeadlockError:
    """Name the first cycle of ranks waiting on each other, or a wait on a finished rank."""
    blocked = [r for r in range(len(actions)) if pc[r] < len(actions[r])]
    r, seen = blocked[0], []
    while r not in seen and pc[r] < len(actions[r]):
        seen.append(r)
        r = actions[r][pc[r]].peer
    where = [(x, pc[x], actions[x][pc[x]]) for x in seen]
    desc = [f"rank {x} is blocked in {a} (action {i})" for x, i, a in where]
    if r not in seen:  # the chain ends at a rank that has finished its list
        msg = (f"deadlock: {'; '.join(desc)}, but rank {r} has finished "
               f"(no matching {'receive' if where[-1][2].kind == 'send' else 'send'})")
        return DeadlockError(msg, (seen[-1], r), where)
    cycle = where[seen.index(r):]
    a, b = cycle[0][2], cycle[1 % len(cycle)][2]
    if len(cycle) == 2 and a.kind == b.kind == "recv":
        why = "both ranks receive first"
    elif len(cycle) == 2 and a.kind == b.kind == "send":
        why = f"both ranks send first and {mode} sends wait for their receive"
    elif len(cycle) == 2:
        why = "the tags or the order of messages differ"
    else:
        why = f"a cycle of {len(cycle)} ranks, each waiting for the next"
    desc = [f"rank {x} is blocked in {a} (action {i})" for x, i, a in cycle]
    return DeadlockError(f"deadlock between ranks {cycle[0][0]} and {cycle[1 % len(cycle)][0]}"
                         f": {'; '.join(desc)} ({why})",
                         (cycle[0][0], cycle[1 % len(cycle)][0]), cycle)


def verify(plan, mode: str = "rendezvous") -> SimResult:
    """Reject a plan before launch: raises DeadlockError/PlanError, else returns the dry run."""
    return simulate(plan, mode=mode)
