"""Measure alpha, beta, gamma and the host terms on this machine and save them for the model.

    mpiexec -n 2 python -m minipar.bench calibrate [--out PATH] [--max-bytes 64M]
        [--cache auto|1M] [--quick]

alpha, beta, beta_mem, C
    Ping-pong between ranks 0 and 1 through the communicator (``comm.send``/``comm.recv``,
    NumPy buffers), 8 B to 1 MiB by factors of 4, then by 2 to 64 MiB: the one-way time
    of m bytes is half a round trip, median of repeats. A line alpha + beta m is fitted
    (weighted by 1/t) to the sizes m <= C; beta_mem to the sizes m >= 4C, as the
    least-squares slope of t(m) - alpha - beta C against m - C (continuous at C).
    C is ``--cache`` or, by default (auto), the measured size from 256 KiB to top/4 whose
    fit has the smallest sum of squared relative errors over the sizes from 64 KiB up.
duplex
    Ranks 0 and 1 exchange m bytes each way at once (``comm.sendrecv``), m >= 4C: duplex is
    the median of (t_exchange(m) - alpha - beta C) / (beta_mem (m - C)), which for large m
    is t_exchange(m) / t_pingpong(m): 1 for full duplex, 2 for half duplex.
gamma, gamma_mem
    Ranks 0 .. cores-1 at once (one per core) add two float32 buffers in place
    (``np.add(a, b, out=a)``, what a reduction step does) of 4 to 64 MiB by factors of 2;
    slowest rank. The other ranks wait in MPI meanwhile, and with more ranks than cores
    they take turns on the cores: at 4 ranks on 2 cores gamma and gamma_recv come out
    about twice their 2-rank values. Steps with more busy ranks than cores are priced by
    ``loaded`` (below) instead; the others (naive, a tree's upper levels) keep those
    values, and with them the cost of the ranks waiting beside them. gamma is the median
    seconds per byte of the adds of at most C bytes (else of the smallest), gamma_mem the
    slope beyond C fitted to the adds of at least 2C, as for beta_mem.
private_bytes, gamma_recv
    private_bytes is this core's L2 (from /sys/devices/system/cpu/cpu0/cache; none found:
    no term). gamma_recv is the add as a reduction step does it, on working sets that fit
    there: rank 0 receives m bytes from rank 1 and adds them into the buffer it sent back
    the step before (a tree's root), m from 64 KiB to private_bytes / 2 by factors of 4;
    the median seconds per byte over those sizes. On the development host it was 2-4x
    gamma: the received bytes are still in the other core's cache.
loaded (only with more ranks than cores)
    Every rank at once, in pairs (r with r XOR 1), times a one-way message (half a
    ping-pong), an exchange, and an exchange followed by the add of what arrived
    (``minipar.bench steps``), at 8 B, 64 KiB, 256 KiB, 1 MiB, 4 MiB, 16 MiB (those below
    the top size) and the top size. The model prices a step in which ranks outnumber
    cores with these points instead of alpha-beta-gamma times s: there a message waits
    for its partner to get a core, which no per-byte term describes (on the development
    host an exchange of 64-256 KiB took 250-340 us at 4 ranks, against 8-17 us at 2).
cores, ranks_per_host
    ``os.cpu_count()`` and the ranks on this host ($MPI_LOCALNRANKS, else the communicator
    size): the model slows beta and gamma by max(1, ranks_on_host / cores).
mpi
    MPI's own Allreduce at this p, at 1.5x the ping-pong's sizes (96 B to 1.5x the top):
    the model interpolates these points, so the powers of two that costcheck times are
    predicted between two measurements, never read off one. Why points, not a line: MPICH
    changes algorithm and protocol with size (its cost per byte doubles from 32 MiB here).
shm
    ``--allreduce shm`` (``collectives.allreduce_shm``) at the same sizes, when every rank
    is on this host (else left out): the model has no formula for it (its cost is waking
    sleeping ranks and copying memory), so the advisor prices it from these points only.

``--quick`` (tests): up to 256 KiB, 5 ms per size, adds of 1 to 4 MiB, no exchange (so no
beta_mem and duplex 1). The result goes to ~/.cache/minipar/calibration.json (or --out, or
$MINIPAR_CALIBRATION) and is read by ``minipar.planning.costmodel.load()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

import numpy as np

from minipar.comm import collectives, launch
from minipar.comm.host_memory import one_host
from minipar.bench import steps
from minipar.core.errors import UserError
from minipar.planning import costmodel as cm
from minipar.comm.communicator import init
from minipar.core.units import parse_size


def _sizes(lo: int, hi: int, factor: int = 4) -> list[int]:
    out, n = [], lo
    while n <= hi:
        out.append(n)
        n *= factor
    if out and out[-1] < hi:
        out.append(hi)  # always measure the largest size asked for
    return out


def _reps(comm, probe: float, budget: float) -> int:
    """Repetitions that fill ``budget`` seconds, decided on rank 0 and shared, so every
    rank runs the same loop."""
    n = max(3, min(1000, int(budget / max(probe, 1e-7)))) if comm.rank == 0 else 0
    return comm.bcast_obj(n, 0)


def ping_pong(comm, sizes, budget: float) -> list[float]:
    """Median one-way seconds per size between ranks 0 and 1 (others wait in the bcast)."""
    out = []
    for n in sizes:
        buf = np.ones(n, np.uint8)  # written pages: np.zeros would read one shared zero page
        times = []
        for phase in ("probe", "run"):
            reps = 2 if phase == "probe" else _reps(comm, min(times), budget)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                if comm.rank == 0:
                    comm.send(buf, 1, 7)
                    comm.recv(buf, 1, 7)
                elif comm.rank == 1:
                    comm.recv(buf, 0, 7)
                    comm.send(buf, 0, 7)
                times.append((time.perf_counter() - t0) / 2)
        out.append(statistics.median(times))
    return out


def exchange(comm, sizes, budget: float) -> list[float]:
    """Median seconds of one Sendrecv of ``n`` bytes each way between ranks 0 and 1."""
    out = []
    for n in sizes:
        a, b = np.ones(n, np.uint8), np.ones(n, np.uint8)
        times = []
        for phase in ("probe", "run"):
            reps = 2 if phase == "probe" else _reps(comm, min(times), budget)
            times = []
            for _ in range(reps):
                comm.barrier()
                t0 = time.perf_counter()
                if comm.rank < 2:
                    other = 1 - comm.rank
                    comm.sendrecv(a, other, b, other, 8)
                times.append(time.perf_counter() - t0)
        out.append(max(comm.allgather_obj(statistics.median(times))[:2]))
    return out


def fit_mem(sizes, times, alpha, beta, cache, factor=4):
    """beta_mem: slope of t - alpha - beta C against m - C (weights 1/t), sizes >= factor C."""
    rows = [(n - cache, t - alpha - beta * cache, 1 / t) for n, t in zip(sizes, times)
            if n >= factor * cache]
    if not rows:
        return None
    num = sum(w * w * x * y for x, y, w in rows)
    den = sum(w * w * x * x for x, y, w in rows)
    return max(num / den, 0.0)


def fit_p2p(sizes, times, cache):
    """(C, alpha, beta, beta_mem): alpha, beta fitted to sizes <= C, beta_mem to sizes >= 4C.
    ``cache`` None: C is the measured size from 256 KiB up (with a size >= 4C measured)
    whose fit has the smallest sum of squared relative errors over the sizes >= 64 KiB."""
    def one(c):
        small = [(n, t) for n, t in zip(sizes, times) if n <= c]
        alpha, beta = cm.fit_line(*zip(*small))
        return c, alpha, beta, fit_mem(sizes, times, alpha, beta, c)

    if cache:
        return one(cache)
    best = None
    for c in (n for n in sizes if n >= 256 << 10 and 4 * n <= sizes[-1]):
        fit = one(c)
        par = cm.CostParams(fit[1], fit[2], 0.0, beta_mem=fit[3], cache_bytes=c)
        err = sum((cm.message_time(n, par) / t - 1) ** 2 for n, t in zip(sizes, times)
                  if n >= 64 << 10)
        if best is None or err < best[0]:
            best = (err, fit)
    return best[1] if best else one(sizes[-1])


def reduction(sizes, budget: float) -> list[float]:
    """Median seconds of one in-place float32 add of ``n`` bytes, per size."""
    out = []
    for n in sizes:
        a = np.ones(n // 4, np.float32)
        b = np.ones(n // 4, np.float32)
        times, deadline = [], time.perf_counter() + budget
        while len(times) < 3 or time.perf_counter() < deadline:
            t0 = time.perf_counter()
            np.add(a, b, out=a)
            times.append(time.perf_counter() - t0)
        out.append(statistics.median(times))
    return out


def private_cache() -> int | None:
    """Bytes of cpu0's level-2 cache from sysfs, or None."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in sorted(os.listdir(base)):
            d = os.path.join(base, idx)
            with open(os.path.join(d, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(d, "size")) as f:
                return parse_size(f.read().strip())
    except (OSError, UserError):
        return None
    return None


def reduce_after_recv(comm, sizes, budget: float) -> list[float]:
    """Median seconds per byte of the add in a reduction step, per size: rank 0 receives m
    bytes from rank 1 and adds them into the buffer it sent back the step before."""
    out = []
    for n in sizes:
        x, tmp = np.ones(n // 4, np.float32), np.ones(n // 4, np.float32)
        adds = []
        for _ in range(_reps(comm, budget / 20, budget)):
            comm.barrier()
            if comm.rank == 0:
                comm.recv(tmp, 1, 9)
                t0 = time.perf_counter()
                np.add(x, tmp, out=x)
                adds.append(time.perf_counter() - t0)
                comm.send(x, 1, 10)
            elif comm.rank == 1:
                comm.send(x, 0, 9)
                comm.recv(x, 0, 10)
        out.append(comm.bcast_obj(statistics.median(adds) / n if adds else None, 0))
    return out


def allreduce_times(comm, sizes, budget: float, allreduce=None) -> list[float]:
    """Median seconds of ``allreduce(comm, buf)`` (default MPI's Allreduce; float32, in
    place) per size, slowest rank."""
    out = []
    call = allreduce or (lambda c, b: c.allreduce(b))
    for n in sizes:
        buf = np.ones(n // 4, np.float32)
        comm.barrier()
        t0 = time.perf_counter()
        call(comm, buf)
        reps = _reps(comm, time.perf_counter() - t0, budget)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            call(comm, buf)
            times.append(time.perf_counter() - t0)
        out.append(max(comm.allgather_obj(statistics.median(times))))
    return out


def _table(title, sizes, measured, fit) -> str:
    lines = [title, f"{'bytes':>10} {'measured us':>12} {'fit us':>10} {'error':>7} {'ns/B':>7}"]
    for n, t in zip(sizes, measured):
        f = fit(n)
        lines.append(f"{n:>10} {t * 1e6:>12.2f} {f * 1e6:>10.2f} {100 * (f / t - 1):>6.1f}% "
                     f"{t / n * 1e9:>7.4f}")
    return "\n".join(lines)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="where to save (default: costmodel.default_path())")
    ap.add_argument("--max-bytes", default="64M", help="largest message (default 64M)")
    ap.add_argument("--cache", default="auto", help="C: bytes in cache, or auto (default)")
    ap.add_argument("--seconds", type=float, default=0.05, help="time budget per size")
    ap.add_argument("--quick", action="store_true", help="up to 256K, 5 ms per size (tests)")
    args = ap.parse_args(argv)
    top, budget = parse_size(args.max_bytes), args.seconds
    cache = None if args.cache == "auto" else parse_size(args.cache)
    red_sizes = _sizes(4 << 20, 64 << 20, 2)
    if args.quick:
        top, budget, red_sizes = min(top, 256 << 10), 0.005, _sizes(1 << 20, 4 << 20)

    comm = init()
    if comm.size < 2:
        raise UserError("calibrate needs two ranks for its ping-pong: "
                        "mpiexec -n 2 python -m minipar.bench calibrate")
    msg_sizes = _sizes(8, min(top, 1 << 20)) + _sizes(2 << 20, top, 2)  # by 2 from 1 MiB
    big = [n for n in msg_sizes if n >= 4 * (cache or 256 << 10)]  # for the exchange
    comm.barrier()
    cores = os.cpu_count() or comm.size  # adds on at most one rank per core (no overlap
    mine = reduction(red_sizes, budget) if comm.rank < cores else None  # with s)
    gam_t = [max(ts) for ts in zip(*(x for x in comm.allgather_obj(mine) if x))]
    comm.barrier()
    p2p_t = ping_pong(comm, msg_sizes, budget)
    ex_t = exchange(comm, big, budget)
    private = private_cache()
    recv_sizes = _sizes(64 << 10, private // 2) if private else []
    recv_g = reduce_after_recv(comm, recv_sizes, budget) if recv_sizes else []
    loaded = None
    if comm.size > cores:
        load_sizes = sorted({n for n in (8, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20)
                             if n < top} | {top})
        rows = [steps.one_size(comm, n, budget) for n in load_sizes]
        loaded = {k: tuple((n, r[k]) for n, r in zip(load_sizes, rows))
                  for k in ("oneway", "exchange", "exchange_add")}
    mpi_sizes = [n * 3 // 2 for n in msg_sizes if n >= 64]
    mpi_t = allreduce_times(comm, mpi_sizes, budget)
    shm_t = (allreduce_times(comm, mpi_sizes, budget, collectives.allreduce_shm)
             if one_host(comm) else None)
    if comm.rank != 0:
        return 0
    cache, alpha, beta, beta_mem = fit_p2p(msg_sizes, p2p_t, cache)
    big = [n for n in big if n >= 4 * cache]
    ex_t = ex_t[len(ex_t) - len(big):]
    duplex = 1.0
    if beta_mem:
        duplex = statistics.median((t - alpha - beta * cache) / (beta_mem * (n - cache))
                                   for n, t in zip(big, ex_t))
    in_cache = ([t / n for t, n in zip(gam_t, red_sizes) if n <= cache]
                or [gam_t[0] / red_sizes[0]])
    gamma = statistics.median(in_cache)
    gamma_mem = None if beta_mem is None else fit_mem(red_sizes, gam_t, 0.0, gamma, cache, 2)
    mpi_pts = [(n, t) for n, t in zip(mpi_sizes, mpi_t)]
    shm = {comm.size: list(zip(mpi_sizes, shm_t))} if shm_t else {}
    params = cm.CostParams(
        alpha, beta, gamma, mpi={comm.size: mpi_pts},
        source=f"calibrate on {comm.size} ranks, {time.strftime('%Y-%m-%d')}",
        beta_mem=beta_mem, cache_bytes=float(cache) if beta_mem is not None else None,
        duplex=duplex, cores=cores, gamma_mem=gamma_mem,
        private_bytes=float(private) if recv_g else None,
        gamma_recv=statistics.median(recv_g) if recv_g else None, loaded=loaded,
        ranks_per_host=int(os.environ.get("MPI_LOCALNRANKS") or comm.size), shm=shm)
    print(_table("ping-pong (one way)", msg_sizes, p2p_t, params.p2p))
    if big:
        print(_table("Sendrecv exchange (each way)", big, ex_t,
                     lambda n: cm.message_time(n, params, exchange=True)))
    hot = dataclasses.replace(params, gamma_recv=None)  # these adds follow no receive
    print(_table("float32 add (slowest rank)", red_sizes, gam_t,
                 lambda n: cm.reduce_time(n, hot)))
    if loaded:
        print(f"every rank busy, in pairs (for steps with more busy ranks than cores)\n"
              f"{'bytes':>10} {'one-way us':>11} {'exchange us':>12} {'exch+add us':>12}\n"
              + "\n".join(f"{n:>10} {o * 1e6:>11.1f} {x * 1e6:>12.1f} {xa * 1e6:>12.1f}"
                          for (n, o), (_, x), (_, xa) in zip(*loaded.values())))
    print(_table(f"MPI Allreduce, p={comm.size}", mpi_sizes, mpi_t,
                 lambda n: cm.curve_time(mpi_pts, n)))
    if shm:
        print(_table(f"shm allreduce (shared memory, sleeping waits), p={comm.size}",
                     mpi_sizes, shm_t, lambda n: cm.curve_time(shm[comm.size], n)))
    if recv_g:
        print("add after a receive (working set in a core's own cache, L2 "
              f"{private >> 10} KiB)\n{'bytes':>10} {'ns/B':>7}\n" + "\n".join(
                  f"{n:>10} {g * 1e9:>7.4f}" for n, g in zip(recv_sizes, recv_g)))
    bw = f"{1 / beta / 1e9:.2f} GB/s" if beta > 0 else "inf"
    rate = f"{1 / gamma / 1e9:.2f} GB/s" if gamma > 0 else "inf"
    mem = "-" if beta_mem is None else f"{beta_mem * 1e9:.4f} ns/B"
    print(f"alpha {alpha * 1e6:.2f} us, beta {beta * 1e9:.4f} ns/B ({bw}), "
          f"gamma {gamma * 1e9:.4f} ns/B ({rate}); C {cache} B, beta_mem {mem}, "
          f"duplex {duplex:.2f}, gamma_mem {(gamma_mem or gamma) * 1e9:.4f} ns/B, gamma_recv "
          f"{(params.gamma_recv or gamma) * 1e9:.4f} ns/B; "
          f"{params.ranks_per_host} ranks on {params.cores} cores: "
          f"s = {params.slowdown(comm.size):.2f}")
    for note in comm.notes:
        print(f"note: {note}")
    print(f"saved {cm.save(params, args.out)}")
    sys.stdout.flush()
    return 0


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())
