"""The hand-written collectives on simulated ranks (threads and queues), for many p and n.

No mpiexec: a tiny in-process communicator with the calls the collectives use lets
hypothesis try any number of ranks (powers of two or not) and any length, checking the
sums, that every rank ends with the same bits, and the message counts of each formula.
"""

from __future__ import annotations

import queue
import threading
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minipar.comm import collectives as C
from minipar.comm.spans import NOOP
from test_collectives_mpi import MESSAGES as HAND, expected_sends  # shm needs MPI


class SimWorld:
    def __init__(self, p):
        self.p, self.lock, self.boxes = p, threading.Lock(), {}

    def box(self, src, dst, tag) -> queue.Queue:
        with self.lock:
            return self.boxes.setdefault((src, dst, tag), queue.Queue())


class SimComm:
    """Sends are buffered (never block), receives wait on a queue: like MPI's eager path."""

    def __init__(self, world, rank):
        self.world, self.rank, self.size = world, rank, world.p
        self.sent: list[tuple[int, int, int]] = []  # (dest, tag, elements)
        self.polls = 0

    def send(self, buf, dest, tag=0, note=""):
        self.sent.append((dest, tag, buf.size))
        self.world.box(self.rank, dest, tag).put(buf.copy())

    def recv(self, buf, source, tag=0, note=""):
        data = self.world.box(source, self.rank, tag).get(timeout=20)
        assert data.size == buf.size, f"r{self.rank}: {data.size} elements into {buf.size}"
        buf[...] = data
        return source, tag

    def sendrecv(self, sendbuf, dest, recvbuf, source, tag=0, recvtag=None, note=""):
        self.send(sendbuf, dest, tag)
        return self.recv(recvbuf, source, tag if recvtag is None else recvtag)

    # non-blocking: a request is a callable that says whether it has finished
    def isend(self, buf, dest, tag=0, note=""):
        self.send(buf, dest, tag)
        return lambda block=False: True

    def irecv(self, buf, source, tag=0, note=""):
        box, got = self.world.box(source, self.rank, tag), []

        def done(block=False):
            if not got:
                try:
                    got.append(box.get(timeout=20) if block else box.get_nowait())
                except queue.Empty:
                    return False
                buf[...] = got[0]
            return True
        return done

    def testall(self, reqs):
        self.polls += 1
        return all([r() for r in reqs])

    def waitall(self, reqs):
        assert all([r(block=True) for r in reqs]), f"r{self.rank}: a receive timed out"

    def collective(self, op, algo, buf, root=-1):
        return NOOP


def run_ranks(p, fn, inputs):
    """fn(comm, inputs[r]) on p threads; returns (results, comms)."""
    world = SimWorld(p)
    comms = [SimComm(world, r) for r in range(p)]
    results, errors = [None] * p, []

    def body(r):
        try:
            results[r] = fn(comms[r], inputs[r])
        except Exception as exc:  # noqa: BLE001 - reported below with the rank
            errors.append((r, exc))
    threads = [threading.Thread(target=body, args=(r,)) for r in range(p)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads), "a simulated rank hung"
    leftover = [k for k, q in world.boxes.items() if not q.empty()]
    assert not leftover, f"messages never received: {leftover}"
    return results, comms


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 9), n=st.integers(0, 40), algo=st.sampled_from(HAND),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_allreduce_sums_and_agrees_bitwise(p, n, algo, dtype, seed):
    rng = np.random.default_rng(seed)
    ints = [rng.integers(-20, 21, n).astype(dtype) for _ in range(p)]
    results, comms = run_ranks(p, C.get_allreduce(algo), [x.copy() for x in ints])
    exact = np.sum(ints, axis=0, dtype=np.float64) if p else None
    for r in range(p):
        assert np.array_equal(results[r], exact.astype(dtype))
        msgs = len(comms[r].sent)
        assert (msgs, sum(e for _, _, e in comms[r].sent)) == expected_sends(algo, p, r, n)
    floats = [rng.standard_normal(n).astype(dtype) for _ in range(p)]
    results, _ = run_ranks(p, C.get_allreduce(algo), [x.copy() for x in floats])
    assert len({res.tobytes() for res in results}) == 1  # the very same bits everywhere


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 7), n=st.integers(0, 40), algo=st.sampled_from(HAND),
       seed=st.integers(0, 2**16))
def test_started_allreduce_moved_on_by_polls_gives_the_same_bits(p, n, algo, seed):
    """start_allreduce + poll() until done (other work in between) = the blocking call:
    the same messages, the same sum, bit for bit."""
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(n) for _ in range(p)]

    def overlapped(comm, x):
        flight = C.start_allreduce(comm, algo, x)
        while not flight.poll():
            np.linalg.norm(rng.standard_normal(50))  # "backward" work between polls
        return x

    want, blocking = run_ranks(p, C.get_allreduce(algo), [x.copy() for x in xs])
    got, comms = run_ranks(p, overlapped, [x.copy() for x in xs])
    for r in range(p):
        assert got[r].tobytes() == want[r].tobytes()
        assert comms[r].sent == blocking[r].sent  # same messages, same order
    half, _ = run_ranks(p, lambda c, x: (C.start_allreduce(c, algo, x).wait(), x)[1],
                        [x.copy() for x in xs])
    assert all(h.tobytes() == w.tobytes() for h, w in zip(half, want))


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 7), counts=st.lists(st.integers(0, 6), min_size=7, max_size=7),
       seed=st.integers(0, 2**16))
def test_reduce_scatter_and_allgather_with_uneven_counts(p, counts, seed):
    counts = counts[:p]
    n, offs = sum(counts), C.offsets(counts)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-9, 10, n).astype(np.float64) for _ in range(p)]
    total = np.sum(xs, axis=0)
    got, comms = run_ranks(p, lambda c, x: C.reduce_scatter_ring(c, x, counts).copy(), xs)
    for r in range(p):
        assert np.array_equal(got[r], total[offs[r]:offs[r + 1]])
        assert len(comms[r].sent) == p - 1
    ins = []
    for r in range(p):
        buf = np.full(n, np.nan)
        buf[offs[r]:offs[r + 1]] = total[offs[r]:offs[r + 1]]
        ins.append(buf)
    got, _ = run_ranks(p, lambda c, x: C.allgather_ring(c, x, counts), ins)
    assert all(np.array_equal(g, total) for g in got)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(1, 7), n=st.integers(0, 12), root=st.integers(0, 6))
def test_broadcast_and_alltoall(p, n, root):
    root %= p
    xs = [np.full(n, float(r)) for r in range(p)]
    got, comms = run_ranks(p, lambda c, x: C.broadcast_tree(c, x, root), xs)
    assert all(np.array_equal(g, xs[root]) for g in got)
    assert sum(len(c.sent) for c in comms) == p - 1
    assert len(comms[root].sent) == (p - 1).bit_length()
    blocks = [np.array([100 * r + j for j in range(p) for _ in range(2)], float) for r in range(p)]
    got, _ = run_ranks(p, C.alltoall_pairwise, blocks)
    for r in range(p):
        assert np.array_equal(got[r], np.repeat([100 * s + r for s in range(p)], 2).astype(float))


@given(n=st.integers(0, 10**6), p=st.integers(1, 64))
def test_chunk_counts(n, p):
    counts = C.chunk_counts(n, p)
    offs = C.offsets(counts)
    assert len(counts) == p and sum(counts) == n and offs[-1] == n and offs[0] == 0
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


def test_counts_are_checked():
    import pytest
    with pytest.raises(ValueError, match="adding up to 5"):
        C._counts([1, 1], 5, 2)
