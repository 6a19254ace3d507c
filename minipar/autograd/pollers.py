"""Work in flight that the backward pass moves on as it goes (e.g. a gradient bucket's
allreduce, started when its gradients were ready).

A non-blocking message moves only when its rank asks MPI about it. So the backward pass
calls :func:`poll` between nodes, and a long node (the fused LSTM's time loop) calls it
between its steps; each registered poller checks its requests and posts the next round.
With nothing registered a call costs one truth test of an empty list.
"""

from __future__ import annotations

ACTIVE: list = []  # callables, in the order they were added


def add(fn) -> None:
    if fn not in ACTIVE:
        ACTIVE.append(fn)


def remove(fn) -> None:
    if fn in ACTIVE:
        ACTIVE.remove(fn)


def poll() -> None:
    for fn in ACTIVE:
        fn()
