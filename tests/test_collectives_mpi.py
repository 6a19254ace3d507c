"""Hand-written collectives against MPI's own, on K = 1..5 ranks (one mpiexec per K).

Run by pytest, this file starts ``mpiexec -n K python tests/test_collectives_mpi.py``; run
as a script (under mpiexec) it is the worker: every algorithm, lengths 0, 1, K-1, K+1 and
10^5+3, float32 and float64, integer-valued and random data, against MPI's Allreduce; the
same bits on every rank; the message pattern of each algorithm read from the trace.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np
import pytest

from mpiutil import run_mpi

MESSAGES = ["naive", "tree", "rd", "ring"]  # over point-to-point messages
HAND = MESSAGES + ["shm"]                  # and through shared memory (MPI only)
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def expected_sends(algo: str, p: int, r: int, n: int) -> tuple[int, int]:
    """(messages, elements) rank r sends in one allreduce of n elements, by the formulas in
    the docstrings of ``minipar.comm.collectives``."""
    if p == 1 or algo == "shm":  # shm: shared memory, no messages
        return 0, 0
    if algo == "ring":
        c = [n // p + (i < n % p) for i in range(p)]
        return 2 * (p - 1), 2 * n - c[r] - c[(r + 1) % p]
    if algo == "naive":
        msgs = p - 1 if r == 0 else 1
    elif algo == "tree":
        low = r & -r if r else 1 << p.bit_length()  # children: v + 2^k, 2^k below lowbit(v)
        children = sum(1 for k in range(p.bit_length()) if (1 << k) < low and r + (1 << k) < p)
        msgs = (r != 0) + children
    elif algo == "rd":
        p2 = 1 << (p.bit_length() - 1)
        rem, rounds = p - p2, p2.bit_length() - 1
        msgs = 1 if (r < 2 * rem and r % 2 == 0) else rounds + (r < 2 * rem)
    else:
        raise ValueError(algo)
    return msgs, msgs * n


def worker() -> int:
    from minipar.comm import collectives as C
    from minipar.comm.communicator import init
    from minipar.comm.trace import SENDS
    from minipar.comm.watchdog import CommTimeout

    comm = init(trace=True, check_collectives=True)  # the desync guard checks every call too
    p, r = comm.size, comm.rank
    fails: list[str] = []

    def expect(ok, what):
        if not ok:
            fails.append(f"r{r} p={p}: {what}")

    rng = np.random.default_rng(1000 + r)
    for n in sorted({0, 1, max(p - 1, 0), p + 1, 10**5 + 3}):
        for dt in (np.dtype(np.float32), np.dtype(np.float64)):
            for kind in ("integer", "random"):
                if kind == "integer":
                    x = rng.integers(-50, 51, n).astype(dt)
                else:
                    x = rng.standard_normal(n).astype(dt)
                ref = comm.allreduce(x.copy())
                scale = comm.allreduce(np.abs(x))  # rounding error is relative to sum |x|
                for name in HAND:
                    y = C.get_allreduce(name)(comm, x.copy())
                    what = f"{name} n={n} {dt.name} {kind}"
                    if kind == "integer":
                        expect(np.array_equal(y, ref), f"{what}: differs from MPI")
                    else:
                        err = np.abs(y.astype(np.float64) - ref) - RTOL[dt] * scale
                        worst = err.max(initial=-np.inf)
                        expect(worst <= 0, f"{what}: off by {worst:.3g} beyond tolerance")
                    digests = comm.allgather_obj(zlib.crc32(y.tobytes()))
                    expect(len(set(digests)) == 1, f"{what}: ranks hold different bits")

    # the other collectives, on uneven lengths, against MPI's own
    for n in (0, p + 1, 10**5 + 3):
        x = rng.integers(-9, 10, n).astype(np.float64)
        for root in {0, p - 1}:
            y = C.broadcast_tree(comm, x.copy(), root)
            expect(np.array_equal(y, comm.bcast(x.copy(), root)), f"broadcast n={n} root={root}")
        for counts in (C.chunk_counts(n, p), [n] + [0] * (p - 1)):
            offs = C.offsets(counts)
            mine = C.reduce_scatter_ring(comm, x.copy(), counts)
            want = comm.reduce_scatter(x, np.empty(counts[r]), counts)
            expect(np.array_equal(mine, want), f"reduce_scatter n={n} counts={counts}")
            full = np.full(n, np.nan)
            full[offs[r]:offs[r + 1]] = x[offs[r]:offs[r + 1]]
            want = comm.allgatherv(x[offs[r]:offs[r + 1]].copy(), np.empty(n), counts)
            expect(np.array_equal(C.allgather_ring(comm, full, counts), want),
                   f"allgather n={n} counts={counts}")
    for m in (0, 3):
        x = rng.integers(-9, 10, m * p).astype(np.float32)
        want = comm.alltoall(x, np.empty_like(x))
        expect(np.array_equal(C.alltoall_pairwise(comm, x), want), f"alltoall m={m}")

    # the pattern of messages, from the trace
    for name in HAND:
        for n in (1000, p + 1):
            comm.tracer.events.clear()
            C.get_allreduce(name)(comm, np.ones(n))
            sends = [e for e in comm.tracer.events if e.kind == "p2p" and e.op in SENDS]
            got = (len(sends), sum(e.sent for e in sends) // 8)
            want = expected_sends(name, p, r, n)
            expect(got == want, f"{name} n={n}: sent (messages, elements) {got}, formula {want}")
            spans = [e for e in comm.tracer.events if e.kind == "coll"]
            expect(len(spans) == 1 and spans[0].algo == name, f"{name}: one span")

    # shm: the slots grow with the buffer, and a rank that never comes trips the watchdog
    for n in (10, 5 * 10**5, 10):
        y = C.allreduce_shm(comm, np.full(n, r + 1.0))
        expect(np.array_equal(y, np.full(n, p * (p + 1) / 2)), f"shm n={n} after growing")
    if p > 1:  # on a communicator of its own, whose calls no longer line up afterwards
        sub = comm.split(0, name="shm-timeout")
        sub.check_collectives = False
        C.allreduce_shm(sub, np.ones(3))  # every rank: the slots and pipes are made
        sub.set_timeout(0.5)
        if r == 0:
            try:
                C.allreduce_shm(sub, np.ones(3))
                expect(False, "shm without the other ranks returned")
            except CommTimeout as e:
                expect("shm allreduce" in str(e), f"shm timeout says {e}")

    total = comm.allreduce_obj(len(fails))
    for line in fails:
        print("FAIL", line, flush=True)
    if r == 0 and total == 0:
        print(f"OK p={p}", flush=True)
    return 0


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_collectives_match_mpi(k):
    proc = run_mpi(k, [__file__], timeout=120)
    assert f"OK p={k}" in proc.stdout, proc.stdout + proc.stderr


if __name__ == "__main__":
    sys.exit(worker())
