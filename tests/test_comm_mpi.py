"""The communicator under mpiexec: MPI's collectives, point-to-point, timeouts (the polled
path), sub-communicators, the desync guard, the live log, and the report with its files.

One launch on 3 ranks runs ``worker`` (this file as a script) and checks everything that does
not end the job; a second launch on 2 ranks lets the stall watchdog end it.
"""

from __future__ import annotations

import io
import json
import sys
import time

import numpy as np
import pytest

from mpiutil import run_code, run_mpi


def mpi_calls(comm, fail, label):
    """MPI's own collectives and point-to-point, checked against what they must give."""
    p, r = comm.size, comm.rank
    x = np.arange(6.0) + r
    tot = sum(np.arange(6.0) + q for q in range(p))
    fail(np.array_equal(comm.allreduce(x.copy()), tot), f"{label} allreduce")
    fail(np.array_equal(comm.allreduce(x, np.empty(6), op="max"), x - r + p - 1), f"{label} max")
    fail(np.array_equal(comm.bcast(x.copy(), 1), np.arange(6.0) + 1), f"{label} bcast")
    red = comm.reduce(x.copy(), root=p - 1)
    fail(red is None if r != p - 1 else np.array_equal(red, tot), f"{label} reduce")
    fail(np.array_equal(comm.allgather(np.array([r]), np.empty(p, int)), np.arange(p)),
         f"{label} allgather")
    counts = [q + 1 for q in range(p)]
    got = comm.allgatherv(np.full(r + 1, float(r)), np.empty(sum(counts)), counts)
    fail(np.array_equal(got, np.repeat(np.arange(p), counts).astype(float)), f"{label} allgatherv")
    full = np.ones(sum(counts))
    mine = comm.reduce_scatter(full, np.empty(r + 1), counts)
    fail(np.array_equal(mine, np.full(r + 1, float(p))), f"{label} reduce_scatter")
    fail(np.array_equal(comm.reduce_scatter(np.ones(2 * p), np.empty(2)), [p, p]),
         f"{label} reduce_scatter_block")
    a2a = comm.alltoall(np.arange(p) + 10.0 * r, np.empty(p))
    fail(np.array_equal(a2a, 10.0 * np.arange(p) + r), f"{label} alltoall")
    g = comm.gather(np.array([r * 2.0]), np.empty(p) if r == 0 else None, 0)
    fail(g is None if r else np.array_equal(g, 2.0 * np.arange(p)), f"{label} gather")
    s = comm.scatter(np.arange(p) * 3.0 if r == 0 else None, np.empty(1), 0)
    fail(s[0] == 3.0 * r, f"{label} scatter")
    comm.barrier()
    # point-to-point: a ring exchange, non-blocking pairs, and any-source at rank 0
    got = np.empty(3)
    src = comm.sendrecv(np.full(3, float(r)), (r + 1) % p, got, (r - 1) % p, tag=4)
    fail(src == ((r - 1) % p, 4) and got[0] == (r - 1) % p, f"{label} sendrecv")
    reqs = [comm.irecv(got, (r - 1) % p, 6), comm.isend(np.full(3, 7.0 * r), (r + 1) % p, 6)]
    fail(comm.waitall(reqs)[0] == ((r - 1) % p, 6) and got[0] == 7.0 * ((r - 1) % p),
         f"{label} isend/irecv")
    if r == 0:
        seen = sorted(comm.recv(np.empty(1), None, None)[0] for _ in range(p - 1))
        fail(seen == list(range(1, p)), f"{label} recv any source")
    else:
        comm.send(np.ones(1), 0, tag=r)
    fail(comm.allgather_obj({"r": r}) == [{"r": q} for q in range(p)], f"{label} allgather_obj")
    fail(comm.bcast_obj("cfg" if r == 1 else None, 1) == "cfg", f"{label} bcast_obj")
    fail(comm.allreduce_obj(r, "sum") == p * (p - 1) // 2, f"{label} allreduce_obj")


def worker(outdir) -> int:
    from minipar.comm import collectives as C
    from minipar.comm.communicator import CollectiveMismatch, init

    comm = init(trace=True)
    p, r = comm.size, comm.rank
    fails = []

    def fail(ok, what):
        if not ok:
            fails.append(f"r{r}: {what}")

    mpi_calls(comm, fail, "blocking")
    comm.set_timeout(30)  # every call now goes through Isend/Iallreduce/... and Test
    mpi_calls(comm, fail, "polled")
    y = C.allreduce_ring(comm, np.arange(10.0))
    fail(np.array_equal(y, p * np.arange(10.0)), "ring allreduce, polled")
    comm.set_timeout(None)

    sub = comm.split(r % 2, name=f"half{r % 2}")
    v = sub.allreduce(np.array([float(r)]))
    fail(v[0] == sum(q for q in range(p) if q % 2 == r % 2), "split allreduce")
    C.allreduce_ring(sub, np.ones(4))
    ring = [e for e in comm.tracer.events if e.comm == sub.name and e.op == "sendrecv"]
    same_half = all(q % 2 == r % 2 for e in ring for q in e.peers)
    fail(sub.size == 1 or (ring and same_half), "sub-communicator peers as world ranks")

    comm.check_collectives = True
    try:
        if r == 0:
            C.allreduce_ring(comm, np.ones(4))
        else:
            comm.bcast(np.ones(4), 0)
        fail(False, "desync not detected")
    except CollectiveMismatch as exc:
        want = "r0 called allreduce(ring, n=4, float64)"
        fail(str(exc).startswith("collective mismatch on world: ") and want in str(exc)
             and "called bcast(mpi, n=4, float64, root 0)" in str(exc), f"mismatch text: {exc}")
    comm.check_collectives = False

    comm.tracer.stream = io.StringIO()
    comm.tracer.set(show=True)
    comm.set_step(3)
    C.allreduce_ring(comm, np.ones(4 * p, np.float32))
    comm.tracer.set(show=False)
    lines = comm.tracer.stream.getvalue().splitlines()
    first = (f"[r{r}] step 3 ring allreduce 1/{2 * (p - 1)} reduce-scatter send 16 B -> "
             f"r{(r + 1) % p}, recv 16 B <- r{(r - 1) % p}")
    fail(len(lines) == 1 + 2 * (p - 1) and lines[1] == first, f"show-comm lines {lines[:2]}")

    with comm.tracer.compute("forward"):
        time.sleep(0.01)
    rows = comm.report(chrome=f"{outdir}/trace.json", png=f"{outdir}/timeline.png",
                       stream=io.StringIO())
    if r == 0:
        evs = json.load(open(f"{outdir}/trace.json"))["traceEvents"]
        sends = sum(row["msgs_sent"] for row in rows)
        fail(sends == sum(row["msgs_recv"] for row in rows), "sends == receives")
        fail(sum(e["ph"] == "s" for e in evs) == sends, "one flow arrow per message")
        fail({e["pid"] for e in evs} == set(range(p)), "one process per rank")
        fail(all(row["compute_s"] >= 0.009 for row in rows), "compute spans")
    total = comm.allreduce_obj(len(fails))
    for line in fails:
        print("FAIL", line, flush=True)
    if r == 0 and total == 0:
        print("OK", flush=True)
    return 0


@pytest.mark.mpi
def test_communicator_on_three_ranks(tmp_path):
    proc = run_mpi(3, [__file__, str(tmp_path)], timeout=120)
    assert "OK" in proc.stdout.split(), proc.stdout + proc.stderr
    assert (tmp_path / "timeline.png").stat().st_size > 1000


STALL = """
import sys, time
import numpy as np
from minipar.comm.communicator import init, CommTimeout
comm = init(timeout=1.0)
comm.set_step(7)
comm.allreduce(np.zeros(2))
if comm.rank == 0:
    try:
        with comm.phase("sync"):
            comm.recv(np.zeros(4), 1, tag=42)
    except CommTimeout as exc:
        print(exc, file=sys.stderr, flush=True)
        time.sleep(0.5)  # as launch.ABORT_DELAY: let mpiexec forward the line before the abort
        comm.abort(3)
else:
    comm.set_timeout(None)
    time.sleep(60)   # never sends: the job must still end, through rank 0's abort
"""


@pytest.mark.mpi
def test_stall_watchdog_ends_the_job():
    t0 = time.monotonic()
    proc = run_code(2, STALL, timeout=60, check=False)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 30
    assert ("rank 0: recv with r1 on world (tag 42, step 7, phase sync) did not finish within "
            "1.0 s") in proc.stderr
    assert "[r0] step 7 mpi allreduce 16 B" in proc.stderr  # its last calls


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1]))


@pytest.mark.mpi
def test_overlapped_ring_moves_during_the_backward_pass(tmp_path):
    """--overlap with the hand-written ring: a bucket's messages are posted and finished
    inside the backward span of the same step; --trace-steps keeps just steps 2-3."""
    out = tmp_path / "run"
    run_mpi(2, ["-m", "minipar.train", "--layers", "2", "--embed", "16", "--hidden", "64",
                "--batch-size", "8", "--seq-len", "32", "--steps", "3", "--max-chars", "20000",
                "--bucket-kb", "16", "--overlap", "--trace", "--trace-steps", "2-3", "--quiet",
                "--sample-chars", "0", "--out", str(out)], timeout=120)
    spans = [e for e in json.loads((out / "trace.json").read_text())["traceEvents"]
             if e["ph"] == "X"]
    assert {e["args"]["step"] for e in spans} == {2, 3}
    for rank in (0, 1):
        for step in (2, 3):
            mine = [e for e in spans if e["pid"] == rank and e["args"]["step"] == step]
            back = next(e for e in mine if e["name"] == "backward")
            ring = [e for e in mine if e["name"] in ("isend", "irecv")]
            inside = [e for e in ring if back["ts"] < e["ts"] < back["ts"] + back["dur"]]
            assert inside, f"rank {rank} step {step}: no ring message during backward"
            assert all(e["args"]["phase"] == "sync" for e in ring)
