"""Row-sparse gradients: send only the rows a rank touched (an embedding's gradient).

An embedding table E (V, D) gets gradient only in the rows of the ids a batch used. A rank
that holds k_r such rows can send (ids, rows) instead of the whole table; the sum over ranks
is then rebuilt on every rank:

    G = sum_r scatter(ids_r, rows_r)        (rows with the same id are added)

``allreduce_rows`` does it with one small MPI allgather of the counts k_r, then one
hand-written ring allgather of every rank's (ids, rows) packed as bytes (8 bytes of id and
D values per row), so every message is in the trace. It is exact: the same sum as the dense
allreduce, in another order (float rounding aside).

Which is cheaper is known once the counts are known, the same on every rank: per rank, the
ring allreduce of the dense table moves 2 (p-1)/p V D values, the allgather (p-1)/p K (D+1)
on average, K = sum_r k_r. The sparse exchange is used when

    K (D + 1) < 2 V D

and the dense ring allreduce otherwise (a tied embedding, whose decoder touches every row,
always goes dense). This is what Horovod does for TensorFlow's IndexedSlices (allgather),
with the choice made explicit.
"""

from __future__ import annotations

import numpy as np

from minipar.comm.collectives import allgather_ring, offsets

__all__ = ["allreduce_rows", "touched_rows", "sparse_is_cheaper"]


def touched_rows(grad: np.ndarray) -> np.ndarray:
    """Indices of the rows of a (V, D) gradient that are not all zero."""
    return np.flatnonzero(grad.any(axis=1))


def sparse_is_cheaper(counts, shape) -> bool:
    """K (D + 1) < 2 V D, with K = sum of the counts (see the module docstring)."""
    V, D = shape
    return sum(counts) * (D + 1) < 2 * V * D


def allreduce_rows(comm, grad: np.ndarray, dense_allreduce) -> bool:
    """Sum the (V, D) host array ``grad`` over the ranks, in place. Sends (ids, rows) when
    that is smaller, else calls ``dense_allreduce(comm, grad)``. Returns True when sparse."""
    if comm.size == 1:
        return False
    ids = touched_rows(grad)
    mine = np.array([ids.size], dtype=np.int64)
    counts = np.empty(comm.size, dtype=np.int64)
    comm.allgather(mine, counts)
    counts = [int(c) for c in counts]
    if not sparse_is_cheaper(counts, grad.shape):
        dense_allreduce(comm, grad)
        return False
    D, r = grad.shape[1], comm.rank
    width = 8 + D * grad.itemsize  # bytes per row: its id, then its values
    at = offsets([c * width for c in counts])
    packed = np.empty(at[-1], dtype=np.uint8)
    mine = packed[at[r]:at[r + 1]]
    mine[:8 * ids.size] = ids.astype(np.int64).view(np.uint8)
    mine[8 * ids.size:] = np.ascontiguousarray(grad[ids]).reshape(-1).view(np.uint8)
    allgather_ring(comm, packed, [c * width for c in counts])
    grad[...] = 0
    for q, k in enumerate(counts):
        part = packed[at[q]:at[q + 1]]
        their_ids = part[:8 * k].view(np.int64)
        np.add.at(grad, their_ids, part[8 * k:].view(grad.dtype).reshape(k, D))
    return True
