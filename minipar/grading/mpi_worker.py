"""The grader's worker for collective tasks: runs under ``mpiexec -n K``, one file per rank.

    mpiexec -n 3 python -m minipar.grading.mpi_worker allreduce my_ring:allreduce \
        --out DIR --timeout 10

Every rank runs the same cases (lengths and dtypes; roots for a broadcast). For each case it
builds its input from a seed (so it can rebuild every other rank's input and compute the
expected answer without any message), calls the student's function with the tracer on and a
deadline on every wait, and writes one JSON line to ``DIR/rank<r>.jsonl``: the verdict on
its own result, a digest of the result's bits, and what the trace saw during the call --
messages sent and received per peer (count, bytes), and any of MPI's own collectives or
minipar's hand-written ones called inside. ``minipar.grading.collective_checks`` reads the files of
all ranks and judges them together.

After each case the ranks agree (one small allgather, also under the deadline) whether to
go on: after an error or a deadlock on any rank they stop, since messages left unmatched by a
broken case would poison the next one. Nothing here trusts the student's code to return.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib

import numpy as np

from minipar.comm import collectives, communicator
from minipar.comm.communicator import CommTimeout, init
from minipar.core.plugins import load_callable
from minipar.grading.guards import guard_module, guard_mpi4py, student_view
from minipar.grading.report import first_line, student_where

TASKS = ("allreduce", "ring_allreduce", "broadcast", "tree_broadcast")
SENDS = {"send": (True, False), "isend": (True, False), "recv": (False, True),
         "irecv": (False, True), "sendrecv": (True, True)}


def lengths(p: int) -> list[int]:
    """Small lengths around p and 2p (chunks of 0 and uneven chunks), odd and even ones,
    and one large buffer (800 KB in float64: past MPI's eager limit, so a send that
    waits for its receive shows up as a deadlock)."""
    return sorted({0, 1, 2, 3, 4, 5, 7, 8, 12, max(p - 1, 0), p, p + 1, 2 * p, 2 * p + 1,
                   1000, 1001, 100003})


HIDDEN_VAR = "MINIPAR_CHECK_CASES"  # a JSON file of the instructor's own cases
BASE_WAIT, PER_ELEMENT = 2.0, 2e-5  # seconds: the deadline of one wait in a case of n elements


def case_timeout(case: dict, limit: float) -> float:
    """How long one wait may take in this case before it counts as a deadlock:
    min(limit, 2 s + 2e-5 s * n). A right answer at n = 100003 needs about 10 ms here (4 ranks
    on 2 cores), so a short case's deadlock is named in about 2 s rather than after --timeout."""
    return min(limit, BASE_WAIT + PER_ELEMENT * case["n"])


def hidden_cases() -> dict:
    """The instructor's extra cases, ``{"lengths": [n, ...], "seeds": [s, ...]}`` from the
    JSON file named by MINIPAR_CHECK_CASES (``check --cases FILE`` sets it); empty without."""
    path = os.environ.get(HIDDEN_VAR)
    if not path:
        return {"lengths": [], "seeds": []}
    with open(path, encoding="utf-8") as f:
        extra = json.load(f)
    return {"lengths": [int(n) for n in extra.get("lengths", [])],
            "seeds": [int(s) for s in extra.get("seeds", [])]}


def cases(task: str, p: int) -> list[dict]:
    """Every case the worker runs at p ranks, in order (the same list on every rank): the
    standard ones, then the instructor's hidden ones (``hidden_cases``)."""
    out = []
    broadcast = "broadcast" in task
    roots = sorted({0, p - 1, p // 2}) if broadcast else [-1]
    for root in roots:
        for n in lengths(p):
            if root != roots[0] and n not in (1, p + 1, 1001):
                continue  # other roots: a few lengths are enough
            out.append({"n": n, "dtype": "float64", "data": "int", "root": root})
    for n in (p + 1, 1001):
        out.append({"n": n, "dtype": "float32", "data": "random", "root": roots[-1]})
    extra = hidden_cases()
    out += [{"n": n, "dtype": "float64", "data": "int", "root": roots[0]}
            for n in extra["lengths"]]
    out += [{"n": 2 * p + 1, "dtype": "float64", "data": "random", "root": roots[-1],
             "seed": s} for s in extra["seeds"]]
    return out


def case_input(case: dict, index: int, rank: int, seed: int = 12345) -> np.ndarray:
    """Rank ``rank``'s input for case ``index``: integers in [-50, 50] (sums are exact in
    any order) or standard normal numbers, from a seed any rank can reproduce."""
    rng = np.random.default_rng([case.get("seed", seed), index, rank])
    n, dt = case["n"], np.dtype(case["dtype"])
    if case["data"] == "int":
        return rng.integers(-50, 51, n).astype(dt)
    return rng.standard_normal(n).astype(dt)


def expected(task: str, case: dict, index: int, p: int):
    """(answer in float64, tolerance per element) for this case."""
    xs = [case_input(case, index, r).astype(np.float64) for r in range(p)]
    if "broadcast" in task:
        return xs[case["root"]], np.zeros(case["n"])
    exact = np.sum(xs, axis=0) if xs else np.zeros(0)
    if case["data"] == "int":
        return exact, np.zeros(case["n"])
    eps = np.finfo(np.dtype(case["dtype"])).eps
    return exact, 4 * p * eps * np.sum(np.abs(xs), axis=0)  # rounding of p-1 additions


def describe(case: dict) -> str:
    root = f", root {case['root']}" if case.get("root", -1) >= 0 else ""
    return f"n={case['n']} {case['dtype']}{root}"


def judge(got, answer, tol, original, returned) -> str | None:
    """None when ``got`` holds the answer; else what is wrong, for the student."""
    if got.shape != answer.shape:
        return f"the buffer changed shape to {got.shape}"
    bad = np.flatnonzero(~(np.abs(got.astype(np.float64) - answer) <= tol))
    if bad.size == 0:
        return None
    if (returned is not None and isinstance(returned, np.ndarray) and returned is not got
            and returned.shape == answer.shape
            and (np.abs(returned.astype(np.float64) - answer) <= tol).all()):
        return ("the right answer was returned in a new array, but the buffer itself was "
                "not updated: work in place (training reads the buffer, not the return value)")
    i = int(bad[0])
    same = " (the input, unchanged)" if got[i] == original[i] else ""
    return (f"element {i} is {got[i]:.9g}{same}, expected {answer[i]:.9g}; "
            f"{bad.size} of {answer.size} elements wrong")


def run_case(comm, fn, task, case, index):
    """Run the student's function on one case; returns this rank's record."""

    p, r = comm.size, comm.rank
    x = case_input(case, index, r)
    if "broadcast" in task and r != case["root"]:
        x[:] = np.nan if case["data"] == "random" else -999  # must be overwritten
    original = x.copy()
    rec = {"case": index, "error": None, "stall": None, "problem": None}
    tr = comm.tracer
    tr.events.clear()
    tr.set(enabled=True)
    t0 = time.perf_counter()
    returned = None
    try:
        with comm.phase("student"):
            view = student_view(comm)
            returned = fn(view, x, case["root"]) if "broadcast" in task else fn(view, x)
    except CommTimeout as exc:
        rec["stall"] = str(exc)
    except NotImplementedError as exc:
        rec["error"] = f"not implemented yet ({first_line(exc)}, at {student_where(exc)})"
    except Exception as exc:  # anything the student's code raises is reported, not fatal
        rec["error"] = f"{_readable(exc, comm)} (at {student_where(exc)})"
        if isinstance(exc, IndexError) and _in_comm(exc):
            rec["error"] = (f"a message to or from a rank that does not exist: ranks are 0.."
                            f"{p - 1} (at {student_where(exc)})")
    rec["seconds"] = time.perf_counter() - t0
    tr.set(enabled=False)
    events = list(tr.events)
    tr.events.clear()
    if rec["error"] is None and rec["stall"] is None:
        answer, tol = expected(task, case, index, p)
        rec["problem"] = judge(x, answer, tol, original, returned)
    rec["digest"] = zlib.crc32(x.tobytes())
    rec.update(summarize_events(events, comm))
    return rec


def _readable(exc, comm) -> str:
    """The error in words a student can act on; never MPI's own error text."""
    if not type(exc).__module__.startswith("mpi4py"):
        return first_line(exc)
    M = comm._M
    if exc.Get_error_class() == M.ERR_TRUNCATE:
        return ("a receive got a message larger than its buffer: the message was meant for "
                "another receive (one left out, or sizes that do not match)")
    return f"an MPI call was refused ({exc.Get_error_string().strip().splitlines()[0]})"


def _in_comm(exc) -> bool:
    """Did the exception come from the communicator's rank table (``comm._world[peer]``)?"""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename) == os.path.abspath(communicator.__file__)


def summarize_events(events, comm) -> dict:
    """Messages per peer and the collectives called, from the trace of one call."""
    sent: dict = {}
    recv: dict = {}
    mpi, coll = [], []
    for ev in events:
        if ev.kind == "p2p" and ev.op in SENDS:
            is_send, is_recv = SENDS[ev.op]
            if is_send:
                m = sent.setdefault(str(ev.peers[0]), [0, 0])
                m[0], m[1] = m[0] + 1, m[1] + int(ev.sent)
            if is_recv:
                m = recv.setdefault(str(ev.peers[-1]), [0, 0])
                m[0], m[1] = m[0] + 1, m[1] + int(ev.recv)
        elif ev.kind in ("mpi", "check"):
            mpi.append(ev.op)
        elif ev.kind == "coll":
            coll.append(f"{ev.algo} {ev.op}")
    return {"sent": sent, "recv": recv, "mpi": sorted(set(mpi)), "coll": sorted(set(coll))}


def worker(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.grading.mpi_worker")
    ap.add_argument("task", choices=TASKS)
    ap.add_argument("target")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)


    comm = init()
    comm.set_timeout(args.timeout)
    path = os.path.join(args.out, f"rank{comm.rank}.jsonl")
    with open(path, "w") as fh:
        def put(obj):
            fh.write(json.dumps(obj) + "\n")
            fh.flush()

        put({"start": True, "rank": comm.rank, "size": comm.size, "pid": os.getpid()})
        guard_module(collectives)  # before the student's module can import from them
        guard_mpi4py()
        try:
            fn = load_callable(args.target)
        except Exception as exc:
            put({"end": "import", "error": first_line(exc)})
            return 0  # every rank fails the same way: no MPI left to tidy
        for i, case in enumerate(cases(args.task, comm.size)):
            put({"begin": i})
            # A communicator of its own per case: a message one case left unreceived can
            # never be taken by the next case's receive.
            own = comm.split(0, comm.rank, name=f"case{i}")
            wait = case_timeout(case, args.timeout)
            own.set_timeout(wait)
            rec = run_case(own, fn, args.task, case, i)
            put(rec)
            broken = rec["error"] is not None or rec["stall"] is not None
            # A rank stuck in the case reports its own stall after ``wait``; the others must
            # wait for that report longer than that, or a deadlock reads as a lost rank.
            comm.set_timeout(2 * wait + 1.0)
            try:
                verdicts = comm.allgather_obj(broken)
            except CommTimeout:
                put({"end": "lost", "case": i,
                     "error": "another rank did not finish this case in time"})
                comm.abort(3)
            if not any(verdicts):  # every rank is done sending: what is left was never received
                put({"stray_of": i, "stray": own.drain()})
            if any(verdicts):
                put({"end": "stopped", "case": i})
                fh.close()
                sys.stdout.flush()
                # Requests of the broken case may still be pending: MPI_Finalize could wait
                # on them forever, so leave without it (every rank does the same).
                os._exit(0)
        put({"end": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(worker())
