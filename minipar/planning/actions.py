"""The actions of a static plan: compute a task, send to a peer, receive from a peer.

    compute(task, cost)          run task ``task`` (estimated ``cost`` seconds, or any unit)
    send(peer, tag, nbytes)      blocking send to ``peer``
    recv(peer, tag, nbytes)      blocking receive from ``peer``
"""

from __future__ import annotations

from dataclasses import dataclass

from minipar.core.errors import UserError

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
