"""Property tests under real mpiexec, and for what a checkpoint must carry across a resume.

Collectives: one launch per number of ranks K (1..4). Inside it rank 0 lets hypothesis draw
8 cases of each operation (length from 0 up, dtype, root, per-rank counts from the case's
seed) and broadcasts them;
every rank then runs each case through the traced communicator with the desync guard and
a stall timeout on, so a wrong length or a missing message is an error, never a hang. Each
rank can rebuild every other rank's input from the case's seed, so it checks its result
against the sum (or concatenation) computed alone:

    integers: exact;   floats: |got - want| <= 2 p eps(dtype) sum_r |x_r|   (elementwise)

and, for the allreduces, that every rank holds the same bits (a digest allgathered).
(tests/test_collectives_sim.py covers the same algorithms on simulated ranks, float64.)
"""

from __future__ import annotations

import hashlib
import json
import random
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from mpiutil import run_mpi

HAND = ["allreduce_naive", "allreduce_tree", "allreduce_rd", "allreduce_ring",
        "broadcast_tree", "reduce_scatter_ring", "allgather_ring", "alltoall_pairwise"]
MPI = ["allreduce", "bcast", "reduce", "allgatherv", "alltoallv", "reduce_scatter"]
DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int32", "int64"]
CASE = {"n": st.integers(0, 6) | st.integers(7, 3000), "dtype": st.sampled_from(DTYPES),
        "root": st.integers(0, 3), "seed": st.integers(0, 2**31 - 1)}


def draw_cases(per_op: int, at: int) -> list[dict]:
    """``per_op`` cases of every operation, drawn by hypothesis (generation only: a failing
    case is printed whole, so there is nothing to shrink here)."""
    out: list[dict] = []
    for op in HAND + MPI:
        @seed(at)
        @settings(max_examples=per_op, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(st.fixed_dictionaries(dict(CASE, op=st.just(op))))
        def collect(case):
            out.append(case)
        collect()
    return out


def rank_input(case, r, n) -> np.ndarray:
    """Rank r's buffer for a case: small integers (no overflow for 4 ranks) or normals."""
    rng = np.random.default_rng([case["seed"], r])
    dt = np.dtype(case["dtype"])
    if dt.kind == "f":
        return rng.standard_normal(n).astype(dt)
    low = 0 if dt.kind == "u" else -20
    return rng.integers(low, 21, size=n).astype(dt)


def close(got, want, parts) -> bool:
    """Exact for integers; for floats within 2 p eps of the sum of magnitudes."""
    if got.dtype.kind != "f":
        return np.array_equal(got, want.astype(got.dtype))
    scale = sum(np.abs(p.astype(np.float64)) for p in parts) if parts else 0.0
    tol = 2 * max(len(parts), 1) * np.finfo(got.dtype).eps * scale + 1e-30
    return bool(np.all(np.abs(got.astype(np.float64) - want) <= tol))


def counts_for(case, p, n, salt=1) -> list[int]:
    """p counts adding up to n, drawn from the case's seed (the same on every rank)."""
    if p == 1:
        return [n]
    cuts = np.sort(np.random.default_rng([case["seed"], salt]).integers(0, n + 1, p - 1))
    return np.diff(np.concatenate([[0], cuts, [n]])).astype(int).tolist()


def run_case(comm, C, case) -> str | None:
    """Run one case on every rank; None if right, else what was wrong."""
    p, r, n, op = comm.size, comm.rank, case["n"], case["op"]
    root = case["root"] % p
    xs = [rank_input(case, q, n) for q in range(p)]
    total = sum(x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64) for x in xs)
    x = xs[r].copy()
    if op.startswith("allreduce"):
        if op == "allreduce":
            comm.allreduce(x)
        else:
            C.get_allreduce(op.split("_")[1])(comm, x)
        digest = hashlib.sha1(x.tobytes()).hexdigest()
        if len(set(comm.allgather_obj(digest))) != 1:
            return "ranks hold different bits"
        return None if close(x, total, xs) else "wrong sum"
    if op in ("broadcast_tree", "bcast"):
        C.broadcast_tree(comm, x, root) if op == "broadcast_tree" else comm.bcast(x, root)
        return None if np.array_equal(x, xs[root]) else "not root's buffer"
    if op == "reduce":
        out = comm.reduce(x, root=root)
        return None if r != root or close(out, total, xs) else "wrong sum at root"
    counts = counts_for(case, p, n)
    lo, hi = sum(counts[:r]), sum(counts[:r + 1])
    if op in ("reduce_scatter_ring", "reduce_scatter"):
        if op == "reduce_scatter":
            mine = comm.reduce_scatter(x, np.empty(counts[r], x.dtype), counts)
        else:
            mine = C.reduce_scatter_ring(comm, x, counts)
        return None if close(mine, total[lo:hi], [v[lo:hi] for v in xs]) else "wrong chunk"
    want = np.concatenate([xs[q][sum(counts[:q]):sum(counts[:q + 1])] for q in range(p)])
    if op == "allgather_ring":
        buf = np.zeros(n, x.dtype)
        buf[lo:hi] = x[lo:hi]
        C.allgather_ring(comm, buf, counts)
        return None if np.array_equal(buf, want) else "wrong blocks"
    if op == "allgatherv":
        got = comm.allgatherv(x[lo:hi].copy(), np.empty(n, x.dtype), counts)
        return None if np.array_equal(got, want) else "wrong blocks"
    m = n // p  # alltoall: p blocks of m; alltoallv: counts[i][j] from i to j
    if op == "alltoall_pairwise":
        got = C.alltoall_pairwise(comm, x[:m * p].copy())
        want = np.concatenate([xs[q][r * m:(r + 1) * m] for q in range(p)])
        return None if np.array_equal(got, want) else "wrong blocks"
    mat = [counts_for(case, p, min(n, 50), salt=2 + i) for i in range(p)]
    send = x[:sum(mat[r])].copy()
    recv = np.empty(sum(mat[i][r] for i in range(p)), x.dtype)
    comm.alltoallv(send, mat[r], recv, [mat[i][r] for i in range(p)])
    want = np.concatenate([xs[i][sum(mat[i][:r]):sum(mat[i][:r + 1])] for i in range(p)])
    return None if np.array_equal(recv, want) else "wrong blocks"


def worker(per_op: int, at: int) -> int:
    from minipar.comm import collectives as C
    from minipar.comm.communicator import init
    comm = init(trace=True, timeout=30, check_collectives=True)
    cases = comm.bcast_obj(draw_cases(per_op, at) if comm.rank == 0 else None)
    fails = []
    for case in cases:
        why = run_case(comm, C, case)
        if why:
            fails.append(f"{why}: {json.dumps(case)}")
    every = comm.gather_obj(fails)
    if comm.rank == 0:
        for r, lines in enumerate(every):
            for line in lines:
                print(f"FAIL r{r} {line}", flush=True)
        if not any(every):
            print(f"OK p={comm.size} cases={len(cases)}", flush=True)
    return 0


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_collectives_on_random_lengths_dtypes_and_ranks(k):
    at = random.randrange(2**31)
    proc = run_mpi(k, [__file__, "8", str(at)], timeout=120)
    assert f"OK p={k} cases=" in proc.stdout, f"hypothesis seed {at}\n{proc.stdout}{proc.stderr}"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1), st.sampled_from(["char", "word"]), st.booleans())
def test_vocabulary_survives_the_checkpoint_round_trip(text, tokens, lower):
    """resume compares the saved vocabulary (through JSON) with the data's: any text must
    compare equal to itself, or a good checkpoint would be refused."""
    from minipar.data import Vocab, normalize_text
    from minipar.core.errors import DataError
    norm = normalize_text(text, lower)
    try:
        v = Vocab.build(norm, tokens, lower=lower)
    except DataError:
        return  # nothing to build a vocabulary from: refused, as it should be
    saved = json.loads(json.dumps(v.to_dict()))
    assert saved == v.to_dict()
    assert Vocab.from_dict(saved).encode(text).tolist() == v.encode(text).tolist()


if __name__ == "__main__":
    sys.exit(worker(int(sys.argv[1]), int(sys.argv[2])))
