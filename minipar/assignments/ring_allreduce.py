"""Task 5.1: the ring allreduce, written with point-to-point messages.

Every rank holds a buffer of n numbers; afterwards every rank must hold the element-wise
sum over all p ranks, in the same buffer (in place), with the same bits on every rank.

Cut the buffer into p chunks (``chunk_bounds`` below; the first n mod p chunks get one
element more). Rank r talks only to its neighbours: it sends to right = (r+1) mod p and
receives from left = (r-1) mod p.

1. Reduce-scatter, p-1 steps. In step s rank r sends chunk (r-s) mod p to the right and
   adds the chunk it receives from the left into its chunk (r-s-1) mod p. After p-1 steps
   rank r holds the full sum of chunk (r+1) mod p.
2. Allgather, p-1 steps. In step s rank r sends chunk (r-s+1) mod p (a finished one) to the
   right and stores the chunk it receives into chunk (r-s) mod p.

Cost (alpha-beta model, n bytes): 2(p-1) alpha + 2(p-1)/p n beta -- the bandwidth term does
not grow with p, which is why the ring wins for large buffers (tutorial 5).

Use ``comm.sendrecv(send_view, right, recv_buffer, left)``: it sends and receives at once,
so the ring cannot deadlock. ``comm.rank`` and ``comm.size`` give r and p. Do not call the
comm's collective methods (``comm.allreduce`` ...): the grader checks the trace.

Grade it:      python -m minipar.check ring_allreduce ring_allreduce:allreduce
Train with it: mpiexec -n 4 python -m minipar.train --allreduce ring_allreduce:allreduce
"""
# ruff: noqa: F841 - the stub sets up names the finished code will use


import numpy as np


def chunk_bounds(n: int, p: int) -> list[tuple[int, int]]:
    """(start, stop) of each of the p chunks of n elements; the first n mod p are longer."""
    q, rem = divmod(n, p)
    bounds, start = [], 0
    for i in range(p):
        stop = start + q + (i < rem)
        bounds.append((start, stop))
        start = stop
    return bounds


def allreduce(comm, buf: np.ndarray) -> np.ndarray:
    """Sum ``buf`` (1-D, float32 or float64, any length, 0 included) over all ranks in place
    and return it."""
    p, r = comm.size, comm.rank
    bounds = chunk_bounds(buf.size, p)
    # TODO: Task 5.1 -- the reduce-scatter loop, then the allgather loop (see above).
    raise NotImplementedError("Task 5.1: write the ring allreduce (the TODO in "
                              "ring_allreduce.py)")
