"""Collectives written by hand over point-to-point messages, to read on paper.

Every function takes a communicator (``comm.py``'s ``Comm``) and a C-contiguous NumPy array
(any shape; it is worked on as the flat view), reduces by summing, works in place and returns
the array. Any number of ranks, any length (0 and lengths that do not divide by p included),
float32 and float64. MPI's own ``Allreduce`` (``allreduce_mpi``) is the reference. One more
allreduce sends no messages at all: ``shm`` (``host_memory.py``), through one host's shared
memory, with waits that sleep.

Costs use the alpha-beta(-gamma) model: a message of ``m`` bytes takes ``alpha + m*beta``;
adding ``m`` bytes locally takes ``m*gamma``; ``n`` is the buffer size in bytes, ``p`` the
number of ranks, ``L = ceil(log2 p)``.

Every rank ends with the same bits: each result is either computed on one rank and copied
(naive, tree, ring) or computed by both partners of a pair from the same two operands, which
IEEE addition turns into the same sum in either order (recursive doubling).

Each algorithm is written once, as a generator of rounds (``comm/inflight.py``): it yields the
messages of a round, and when resumed adds what arrived. The functions below run it to the
end (``inflight.run``); :func:`start_allreduce` starts it without waiting, so it can move
on while other work goes on.

Tags: each algorithm has its own block of 1000 tags from 20000 up, and each step its own
tag in the block, so every message of a collective says where it belongs. Keep user tags
below 20000.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from minipar.comm import host_memory
from minipar.comm.inflight import InFlight, recv, run, send, sendrecv
from minipar.core.errors import ConfigError
from minipar.core.plugins import load_callable

__all__ = ["allreduce_mpi", "allreduce_shm", "allreduce_naive", "allreduce_tree", "allreduce_rd",
           "allreduce_ring",
           "broadcast_tree", "reduce_scatter_ring", "allgather_ring", "alltoall_pairwise",
           "chunk_counts", "offsets", "ALLREDUCE", "get_allreduce", "start_allreduce",
           "ALLREDUCE_STEPS"]

TAG_NAIVE, TAG_TREE, TAG_BCAST, TAG_RD, TAG_RS, TAG_AG, TAG_A2A = range(20000, 27000, 1000)


def _tag(base: int, step: int) -> int:
    return base + step % 1000


def _flat(buf, who: str) -> np.ndarray:
    if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
        raise ValueError(f"{who}: needs a C-contiguous numpy array, got {type(buf).__name__}")
    return buf.reshape(-1)


def chunk_counts(n: int, p: int) -> list[int]:
    """Split ``n`` elements into ``p`` chunks, as even as can be: the first ``n % p`` chunks
    get one element more."""
    q, rem = divmod(n, p)
    return [q + (i < rem) for i in range(p)]


def offsets(counts) -> list[int]:
    """Start of each chunk, and the total at the end: ``[0, c0, c0+c1, ..., n]``."""
    out = [0]
    for c in counts:
        out.append(out[-1] + c)
    return out


def _levels(p: int) -> int:
    return (p - 1).bit_length()  # ceil(log2 p), 0 for p = 1


# ---- allreduce -----------------------------------------------------------------------

_SCRATCH = threading.local()  # per thread: tests run several ranks as threads of one process


def _scratch(n: int, dtype) -> np.ndarray:
    """A receive buffer of n elements, reused by every hand-written collective of this
    thread (one per dtype, grown when needed). Why: a fresh multi-megabyte array costs a
    page fault per page on every call; receiving 64 MiB into fresh pages took 18.2 ms here,
    into a reused buffer 11.5 ms. Safe because these collectives are blocking: one runs at a
    time per rank, and none hands its scratch buffer back to the caller."""
    dt = np.dtype(dtype)
    bufs = _SCRATCH.__dict__
    buf = bufs.get(dt)
    if buf is None or buf.size < n:
        buf = bufs[dt] = np.empty(n, dt)
    return buf[:n]


def allreduce_mpi(comm, buf):
    """MPI's own Allreduce, in place: the reference the others are checked against."""
    comm.allreduce(_flat(buf, "allreduce_mpi"))
    return buf


def allreduce_shm(comm, buf):
    """Through one host's shared memory, with waits that sleep instead of spinning: no
    messages at all (``host_memory.py``). ``T = 2 alpha_wake (x2 above 16 KiB) + ~3 n`` copy."""
    host_memory.allreduce(comm, _flat(buf, "allreduce_shm"))
    return buf


def allreduce_naive(comm, buf, root: int = 0):
    """Everyone sends to ``root``, which adds them in rank order and sends the sum back.

    Cost: ``2(p-1)(alpha + n*beta) + (p-1)*n*gamma`` -- all of it on the root, one message
    at a time. Messages: the root sends p-1 and receives p-1; every other rank one of each.
    """
    x = _flat(buf, "allreduce_naive")
    with comm.collective("allreduce", "naive", x, root):
        run(comm, _naive_steps(comm, x, _scratch, root))
    return buf


def _naive_steps(comm, x, scratch, root=0):
    p, r = comm.size, comm.rank
    if r != root:
        yield send(x, root, _tag(TAG_NAIVE, 0), "1/2 to root")
        yield recv(x, root, _tag(TAG_NAIVE, 1), "2/2 from root")
        return
    tmp = scratch(x.size, x.dtype)
    others = [q for q in range(p) if q != root]
    for i, src in enumerate(others):
        yield recv(tmp, src, _tag(TAG_NAIVE, 0), f"{i + 1}/{p - 1} gather")
        np.add(x, tmp, out=x)
    for i, dst in enumerate(others):
        yield send(x, dst, _tag(TAG_NAIVE, 1), f"{i + 1}/{p - 1} scatter back")


def allreduce_tree(comm, buf):
    """Binomial-tree reduce to rank 0, then binomial-tree broadcast from it.

    Cost: ``2L(alpha + n*beta) + L*n*gamma`` along the critical path (rank 0 receives L
    messages, then sends L). Messages: every rank but 0 sends one full buffer up the tree;
    in the broadcast, rank v sends one to each child ``v + 2^k < p`` with ``2^k`` below the
    lowest set bit of v (all ``2^k < p`` for rank 0) -- ``2(p-1)`` messages in all.
    """
    x = _flat(buf, "allreduce_tree")
    with comm.collective("allreduce", "tree", x, 0):
        run(comm, _tree_steps(comm, x, _scratch))
    return buf


def _tree_steps(comm, x, scratch):
    yield from _tree_reduce(comm, x, 0, scratch)
    yield from _tree_bcast(comm, x, 0, TAG_TREE + 500, "broadcast")


def _tree_reduce(comm, x, root, scratch):
    p, v = comm.size, (comm.rank - root) % comm.size
    total, tmp, mask, k = _levels(p), None, 1, 0
    while mask < p:
        if v & mask:  # my subtree is complete: hand it to my parent and stop
            yield send(x, (v - mask + root) % p, _tag(TAG_TREE, k), f"{k + 1}/{total} reduce")
            return
        if v + mask < p:
            if tmp is None:
                tmp = scratch(x.size, x.dtype)
            yield recv(tmp, (v + mask + root) % p, _tag(TAG_TREE, k), f"{k + 1}/{total} reduce")
            np.add(x, tmp, out=x)
        mask, k = mask << 1, k + 1


def _tree_bcast(comm, x, root, tagbase, label):
    p, v = comm.size, (comm.rank - root) % comm.size
    total, mask = _levels(p), 1
    while mask < p:  # receive once, from the parent: v with its lowest set bit cleared
        if v & mask:
            k = mask.bit_length() - 1
            yield recv(x, (v - mask + root) % p, _tag(tagbase, k), f"{k + 1}/{total} {label}")
            break
        mask <<= 1
    mask >>= 1
    while mask > 0:  # then send to each child, farthest subtree first
        if v + mask < p:
            k = mask.bit_length() - 1
            yield send(x, (v + mask + root) % p, _tag(tagbase, k), f"{k + 1}/{total} {label}")
        mask >>= 1


def broadcast_tree(comm, buf, root: int = 0):
    """Binomial-tree broadcast from ``root``: each rank that has the data sends it on.

    Cost: ``L(alpha + n*beta)``. Messages: p-1 in all; the root sends L.
    """
    x = _flat(buf, "broadcast_tree")
    with comm.collective("broadcast", "tree", x, root):
        run(comm, _tree_bcast(comm, x, root, TAG_BCAST, "broadcast"))
    return buf


def allreduce_rd(comm, buf):
    """Recursive doubling: in round k, rank r swaps its whole vector with ``r XOR 2^k``.

    For p a power of two: ``log2(p)(alpha + n*beta + n*gamma)``, every rank sending
    ``log2 p`` full buffers. Otherwise, with ``p2`` the largest power of two below p and
    ``rem = p - p2``, the standard fix-up: among the first ``2*rem`` ranks each even rank
    first hands its vector to the odd rank above it and sits out, and gets the result back at
    the end -- ``2(alpha + n*beta)`` more. Per rank: even ranks below ``2*rem`` send 1;
    odd ranks below ``2*rem`` send ``log2(p2) + 1``; the rest ``log2(p2)``.
    """
    x = _flat(buf, "allreduce_rd")
    with comm.collective("allreduce", "rd", x):
        run(comm, _rd_steps(comm, x, _scratch))
    return buf


def _rd_steps(comm, x, scratch):
    p, r = comm.size, comm.rank
    p2 = 1 << (p.bit_length() - 1)
    rem, rounds = p - p2, p2.bit_length() - 1
    tmp = scratch(x.size, x.dtype)
    if r < 2 * rem and r % 2 == 0:
        yield send(x, r + 1, _tag(TAG_RD, 0), "fix-up in")
        yield recv(x, r + 1, _tag(TAG_RD, rounds + 1), "fix-up out")
        return
    if r < 2 * rem:
        yield recv(tmp, r - 1, _tag(TAG_RD, 0), "fix-up in")
        np.add(tmp, x, out=x)
    me = r // 2 if r < 2 * rem else r - rem  # rank among the p2 that take part
    for k in range(rounds):
        other = me ^ (1 << k)
        peer = 2 * other + 1 if other < rem else other + rem
        yield sendrecv(x, peer, tmp, peer, _tag(TAG_RD, k + 1), f"{k + 1}/{rounds}")
        # Lower rank's operand first on both sides, so the pair computes the same bits.
        if peer < r:
            np.add(tmp, x, out=x)
        else:
            np.add(x, tmp, out=x)
    if r < 2 * rem:
        yield send(x, r - 1, _tag(TAG_RD, rounds + 1), "fix-up out")


def allreduce_ring(comm, buf):
    """Ring allreduce (Baidu/Horovod): a reduce-scatter then an allgather around the ring.

    The buffer is cut into p chunks (:func:`chunk_counts`). In each of ``p-1`` steps every
    rank sends one chunk to its right neighbour and adds the chunk from its left one; after
    them rank r holds the sum of chunk r. ``p-1`` more steps pass the summed chunks round.
    Cost: ``2(p-1)alpha + 2(p-1)/p * n*beta + (p-1)/p * n*gamma`` -- the bandwidth term does
    not grow with p, which is why it wins for large buffers. Messages: ``2(p-1)`` per rank,
    carrying ``2(p-1)/p * N`` elements (exactly ``2N - c[r+1] - c[r]`` with uneven chunks).
    """
    x = _flat(buf, "allreduce_ring")
    with comm.collective("allreduce", "ring", x):
        run(comm, _ring_steps(comm, x, _scratch))
    return buf


def _ring_steps(comm, x, scratch):
    p = comm.size
    if p > 1:
        counts = chunk_counts(x.size, p)
        offs = offsets(counts)
        yield from _ring_reduce_scatter(comm, x, counts, offs, 2 * (p - 1), 0, scratch)
        yield from _ring_allgather(comm, x, counts, offs, 2 * (p - 1), p - 1)


def _ring_reduce_scatter(comm, x, counts, offs, total, first, scratch=_scratch):
    p, r = comm.size, comm.rank
    right, left = (r + 1) % p, (r - 1) % p
    tmp = scratch(max(counts), x.dtype)
    for s in range(p - 1):
        out, into = (r - s - 1) % p, (r - s - 2) % p  # ends with chunk r summed here
        got = tmp[:counts[into]]
        yield sendrecv(x[offs[out]:offs[out + 1]], right, got, left, _tag(TAG_RS, s),
                       f"{first + s + 1}/{total} reduce-scatter")
        seg = x[offs[into]:offs[into + 1]]
        np.add(seg, got, out=seg)


def _ring_allgather(comm, x, counts, offs, total, first):
    p, r = comm.size, comm.rank
    right, left = (r + 1) % p, (r - 1) % p
    for s in range(p - 1):
        out, into = (r - s) % p, (r - s - 1) % p  # starts by passing on chunk r
        yield sendrecv(x[offs[out]:offs[out + 1]], right, x[offs[into]:offs[into + 1]], left,
                       _tag(TAG_AG, s), f"{first + s + 1}/{total} allgather")


def reduce_scatter_ring(comm, buf, counts=None):
    """Ring reduce-scatter, in place: afterwards chunk r of ``buf`` on rank r holds the sum
    of chunk r over all ranks (other chunks hold partial sums). Returns that chunk (a view).
    ``counts[r]`` elements per chunk; as even as possible when None.

    Cost: ``(p-1)alpha + (p-1)/p * n*beta + (p-1)/p * n*gamma``; ``p-1`` messages per rank.
    """
    x = _flat(buf, "reduce_scatter_ring")
    p, r = comm.size, comm.rank
    counts = _counts(counts, x.size, p)
    offs = offsets(counts)
    with comm.collective("reduce_scatter", "ring", x):
        if p > 1:
            run(comm, _ring_reduce_scatter(comm, x, counts, offs, p - 1, 0))
    return x[offs[r]:offs[r + 1]]


def allgather_ring(comm, buf, counts=None):
    """Ring allgather, in place: rank r fills chunk r of ``buf``; afterwards every rank has
    every chunk. ``counts[r]`` elements per chunk; as even as possible when None.

    Cost: ``(p-1)alpha + (p-1)/p * n*beta``; ``p-1`` messages per rank.
    """
    x = _flat(buf, "allgather_ring")
    p = comm.size
    counts = _counts(counts, x.size, p)
    with comm.collective("allgather", "ring", x):
        if p > 1:
            run(comm, _ring_allgather(comm, x, counts, offsets(counts), p - 1, 0))
    return buf


def _counts(counts, n, p):
    if counts is None:
        return chunk_counts(n, p)
    counts = [int(c) for c in counts]
    if len(counts) != p or sum(counts) != n or min(counts) < 0:
        raise ValueError(f"counts {counts} must be {p} non-negative numbers adding up to {n}")
    return counts


def alltoall_pairwise(comm, sendbuf, recvbuf=None):
    """Pairwise exchange: in step k rank r sends block ``r+k`` to rank ``r+k`` and receives
    block ``r-k`` from rank ``r-k`` (mod p). ``sendbuf`` holds p equal blocks.

    Cost: ``(p-1)(alpha + n/p*beta)``; ``p-1`` messages per rank.
    """
    s = _flat(sendbuf, "alltoall_pairwise")
    p, r = comm.size, comm.rank
    if s.size % p:
        raise ValueError(f"alltoall_pairwise: length {s.size} is not a multiple of {p} ranks")
    out = np.empty_like(s) if recvbuf is None else _flat(recvbuf, "alltoall_pairwise")
    m = s.size // p
    with comm.collective("alltoall", "pairwise", s):
        out[r * m:(r + 1) * m] = s[r * m:(r + 1) * m]
        for k in range(1, p):
            dst, src = (r + k) % p, (r - k) % p
            comm.sendrecv(s[dst * m:(dst + 1) * m], dst, out[src * m:(src + 1) * m], src,
                          _tag(TAG_A2A, k), note=f"{k}/{p - 1}")
    return out if recvbuf is None else recvbuf


# ---- choosing an allreduce by name -----------------------------------------------------

ALLREDUCE = {"mpi": allreduce_mpi, "naive": allreduce_naive, "tree": allreduce_tree,
             "rd": allreduce_rd, "ring": allreduce_ring, "shm": allreduce_shm}


# the hand-written allreduces as rounds, for start_allreduce
ALLREDUCE_STEPS = {"naive": _naive_steps, "tree": _tree_steps, "rd": _rd_steps,
                   "ring": _ring_steps}


def start_allreduce(comm, name: str, buf, scratch=None) -> InFlight:
    """Start the hand-written allreduce ``name`` of ``buf`` (in place) without waiting;
    ``poll()`` moves it on, ``wait()`` finishes it. ``scratch(n, dtype)`` gives its receive
    buffer: its own, not the shared one, since blocking collectives may run meanwhile."""
    x = _flat(buf, f"allreduce_{name}")
    own = scratch or (lambda n, dtype: np.empty(n, dtype))
    return InFlight(comm, "allreduce", name, x, ALLREDUCE_STEPS[name](comm, x, own))


def get_allreduce(name: str):
    """The allreduce called ``name``: one of :data:`ALLREDUCE`, or ``"module:function"`` (or
    ``"file.py:function"``) -- your own ``f(comm, buf)`` that sums ``buf`` in place across
    ranks. Yours is wrapped so it is traced and checked like the others."""
    if name in ALLREDUCE:
        return ALLREDUCE[name]
    if ":" not in name:
        raise ConfigError(f"unknown allreduce {name!r}: use "
                          f"{', '.join(ALLREDUCE)} or module:function (or file.py:function)")
    func = load_callable(name, "allreduce")

    @functools.wraps(func)
    def traced(comm, buf):
        with comm.collective("allreduce", name, buf):
            out = func(comm, buf)
        return buf if out is None else out
    return traced
