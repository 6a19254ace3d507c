"""Allreduce algorithms against MPI's own, in the manner of nccl-tests: time, algbw, busbw, #wrong.

    mpiexec -n 4 python -m minipar.bench collectives [--sizes 8,1K,16M,64M] [--iters 20]
        [--algos mpi,ring,tree,rd,naive,shm] [--dtype float32] [--json]

For each message size and algorithm: ``warmup`` untimed calls, then ``iters`` timed calls
back to back; ``time`` is the median call on the slowest rank (``mean_us`` in ``--json`` is
the mean, as nccl-tests reports it; on a busy machine one preempted call can double it).

- ``algbw = bytes / time``;
- ``busbw = algbw * 2(p-1)/p``: the rate each link must carry in an optimal allreduce
  (the ring's bandwidth term), so busbw can be compared across p and with the link speed;
- ``#wrong``: elements, summed over ranks, that differ from the reference. The check runs
  once per size and algorithm on integer-valued data whose sum every rank can compute
  exactly; the hand-written algorithms are compared with MPI's Allreduce on it, and MPI's
  own row with the exact sum.

Timed calls reduce a zero buffer in place (values do not change the time; zeros never
overflow). Sizes are bytes (``64K``, ``16M`` are KiB and MiB); large sizes run fewer
iterations (``--budget`` bytes per size and algorithm, at least 3 calls).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.comm.collectives import get_allreduce
from minipar.comm.communicator import init
from minipar.core.units import parse_size

def default_sizes(lo: int = 8, hi: int = 64 << 20) -> list[int]:
    out, n = [], lo
    while n <= hi:
        out.append(n)
        n *= 2
    return out


def pattern(rank: int, count: int, dtype) -> np.ndarray:
    """Small integers in [-8, 8], different on each rank: sums stay exact in float32."""
    i = np.arange(count, dtype=np.int64)
    return ((i * 7 + rank * 13) % 17 - 8).astype(dtype)


def check(comm, fn, count, dtype) -> int:
    """Wrong elements on this rank: ``fn``'s result against MPI's (or, for MPI, the exact sum)."""
    if fn.__name__ == "allreduce_mpi":
        ref = sum(pattern(r, count, np.float64) for r in range(comm.size)).astype(dtype)
    else:
        ref = comm.allreduce(pattern(comm.rank, count, dtype))
    out = fn(comm, pattern(comm.rank, count, dtype))
    return int(np.count_nonzero(out != ref))


def measure(comm, fn, count, dtype, iters, warmup) -> tuple[float, float]:
    """(median, mean) seconds per call, each the largest over ranks. Calls run back to back
    as in nccl-tests; each is timed, and the median keeps one preempted call on this shared
    machine from setting the figure."""
    buf = np.zeros(count, dtype)
    for _ in range(warmup):
        fn(comm, buf)
    times = np.empty(iters)
    comm.barrier()
    for i in range(iters):
        t0 = time.perf_counter()
        fn(comm, buf)
        times[i] = time.perf_counter() - t0
    mine = np.array([np.median(times), times.mean()])
    med, mean = comm.allreduce(mine, op="max")
    return float(med), float(mean)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench collectives",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", help="comma-separated sizes in bytes (default 8 B to 64 MiB, x2)")
    ap.add_argument("--iters", type=int, default=20, help="timed calls per size at most")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    ap.add_argument("--budget", default="512M", help="bytes reduced per size and algorithm")
    ap.add_argument("--algos", default="mpi,ring,tree,rd,naive,shm",
                    help="names for get_allreduce, or module:function")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        raise UserError("--iters must be at least 1 and --warmup at least 0")
    sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else default_sizes()
    budget = parse_size(args.budget)

    algos = [(a, get_allreduce(a)) for a in args.algos.split(",") if a]
    comm = init()
    p, dtype = comm.size, np.dtype(args.dtype)
    factor = 2 * (p - 1) / p
    if comm.rank == 0 and not args.json:
        print(f"# minipar collectives: allreduce (sum), {p} ranks, {dtype.name}, {comm.library}, "
              f"heavy yield {'on' if comm.heavy_yield else 'off'}")
        for note in comm.notes:
            print(f"# note: {note}")
        print(f"# {'size':>10} {'count':>10} {'algo':>6} {'iters':>5} {'time(us)':>10} "
              f"{'algbw(GB/s)':>11} {'busbw(GB/s)':>11} {'#wrong':>6}", flush=True)
    rows = []
    for size in sizes:
        count = max(size // dtype.itemsize, 1)
        nbytes = count * dtype.itemsize
        iters = max(3, min(args.iters, budget // nbytes))
        for name, fn in algos:
            t, mean = measure(comm, fn, count, dtype, iters, args.warmup)
            wrong = int(comm.allreduce(np.array([check(comm, fn, count, dtype)]))[0])
            algbw = nbytes / t / 1e9
            row = dict(algo=name, op="allreduce", ranks=p, dtype=dtype.name, bytes=nbytes,
                       count=count, iters=iters, time_us=t * 1e6, mean_us=mean * 1e6,
                       algbw_gbps=algbw,
                       busbw_gbps=algbw * factor, wrong=wrong)
            rows.append(row)
            if comm.rank == 0 and not args.json:
                print(f"  {nbytes:>10} {count:>10} {name:>6} {iters:>5} {t * 1e6:>10.1f} "
                      f"{algbw:>11.3f} {algbw * factor:>11.3f} {wrong:>6}", flush=True)
    if comm.rank == 0 and args.json:
        print(json.dumps(rows, indent=1))
    sys.stdout.flush()
    return 0


main = launch.main_of(run)
