"""Task 5.2: the binomial-tree broadcast.

Rank ``root`` holds the data; afterwards every rank must hold it, in its own buffer (in
place). Work with ranks relative to the root, v = (r - root) mod p, so the root is v = 0.

In round k = 0, 1, ..., every rank that already has the data and has v < 2^k sends it to
v + 2^k (if that rank exists). After round k, 2^(k+1) ranks hold it, so ceil(log2 p) rounds
reach everyone: cost ceil(log2 p) (alpha + n beta), against (p-1)(alpha + n beta) when the
root sends to everyone itself.

Equivalently, from the receiving side: rank v != 0 receives once, from v minus its lowest
set bit, and then sends to v + 2^k for every 2^k below that bit.

Use ``comm.send(buf, dest)`` and ``comm.recv(buf, source)`` with real ranks:
(v + root) mod p. Every rank but the root must receive exactly once, and no rank may send
more than ceil(log2 p) messages (the grader checks the trace).

Grade it:  python -m minipar.check tree_broadcast tree_broadcast:broadcast
"""
# ruff: noqa: F841 - the stub sets up names the finished code will use


import numpy as np


def broadcast(comm, buf: np.ndarray, root: int = 0) -> np.ndarray:
    """Copy ``buf`` of rank ``root`` into ``buf`` on every rank, in place; return it."""
    p, r = comm.size, comm.rank
    v = (r - root) % p
    # TODO: Task 5.2 -- receive once from the parent (unless v == 0), then send to children.
    raise NotImplementedError("Task 5.2: write the tree broadcast (the TODO in "
                              "tree_broadcast.py)")
