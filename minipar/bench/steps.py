"""The parts of one reduction step, timed alone and together: does exchange + add add up?

    mpiexec -n 2 python -m minipar.bench steps [--sizes 64K,256K,1M,4M,16M] [--seconds 0.05]
        [--json]

Ranks pair up (r with r XOR 1; an odd last rank sits out) and, for each size m, time
back-to-back loops of three things on two float32 buffers a, b of m bytes:

    exchange       Sendrecv: a to the partner, b from it          (recursive doubling's
    add            a += b, with nothing sent                       step is the two in a
    exchange+add   the exchange, then a += b                       row: exchange+add)

and report the mean per call, slowest rank. The cost model charges a step
``t_exchange + t_add``; ``excess = t(exchange+add) - t_exchange - t_add`` is what that
misses. On a host where cores share caches, excess is the price of the received bytes
and the written ones changing cores: after an add writes a, the next exchange must fetch
a from the writer's cache, and the add must fetch b from the sender's. A large excess at
some size says the model's per-message and per-add terms cannot be measured apart there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from minipar.comm import launch
from minipar.core.units import parse_size
from minipar.core.errors import UserError
from minipar.comm.communicator import init

DEFAULT_SIZES = "64K,256K,1M,4M,16M"


def _loop(fn, budget: float, comm) -> float:
    """Mean seconds per call of ``fn`` over a count of calls that rank 0 picks from one
    probe call to fill ``budget`` (the same count on every rank: the calls talk)."""
    comm.barrier()
    t0 = time.perf_counter()
    fn()
    probe = time.perf_counter() - t0
    n = comm.bcast_obj(max(3, min(2000, int(budget / max(probe, 1e-7)))), 0)
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return max(comm.allgather_obj((time.perf_counter() - t0) / n))


def one_size(comm, m: int, budget: float) -> dict:
    """Seconds of exchange, add, exchange+add and one-way (half a ping-pong) of m bytes,
    and the excess."""
    peer = comm.rank ^ 1
    active = peer < comm.size
    a = np.empty(max(m // 4, 1), np.float32)
    b = np.empty_like(a)
    a.fill(0.0)  # written, so every page is the rank's own (not one shared zero page);
    b.fill(0.0)  # zeros stay zeros however often they are added

    def exchange():
        if active:
            comm.sendrecv(a, peer, b, peer, 11)

    def add():
        np.add(a, b, out=a)

    def both():
        exchange()
        add()

    def ping_pong():
        if active and comm.rank % 2 == 0:
            comm.send(a, peer, 12)
            comm.recv(a, peer, 12)
        elif active:
            comm.recv(a, peer, 12)
            comm.send(a, peer, 12)

    t = {name: _loop(fn, budget, comm) for name, fn in
         (("exchange", exchange), ("add", add), ("exchange_add", both))}
    t["oneway"] = _loop(ping_pong, budget, comm) / 2
    t["excess"] = t["exchange_add"] - t["exchange"] - t["add"]
    return t


def measure(comm, sizes, budget: float) -> list[dict]:
    """One row per size, in microseconds."""
    return [dict(bytes=m, ranks=comm.size,
                 **{k: v * 1e6 for k, v in one_size(comm, m, budget).items()})
            for m in sizes]


def table(rows) -> str:
    lines = [f"{rows[0]['ranks']} ranks, pairs (r, r XOR 1); mean us per call, slowest rank",
             f"{'bytes':>10} {'exchange':>10} {'add':>9} {'exch+add':>10} {'sum':>9} "
             f"{'excess':>9} {'excess/sum':>10}"]
    for r in rows:
        parts = r["exchange"] + r["add"]
        lines.append(f"{r['bytes']:>10} {r['exchange']:>10.1f} {r['add']:>9.1f} "
                     f"{r['exchange_add']:>10.1f} {parts:>9.1f} {r['excess']:>9.1f} "
                     f"{r['excess'] / parts:>9.0%}")
    return "\n".join(lines)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench steps", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"bytes (default {DEFAULT_SIZES})")
    ap.add_argument("--seconds", type=float, default=0.05, help="time per loop (default 0.05)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 4:
        raise UserError(f"--sizes {args.sizes!r}: give sizes of at least 4 bytes")
    if args.seconds <= 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    comm = init()
    if comm.size < 2:
        raise UserError("steps needs two ranks: mpiexec -n 2 python -m minipar.bench steps")
    rows = measure(comm, sizes, args.seconds)
    if comm.rank == 0:
        print(json.dumps(rows, indent=1) if args.json else table(rows), flush=True)
    return 0


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())
