"""Measure alpha, beta and gamma on this machine and save them for the cost model.

    mpiexec -n 2 python -m minipar.bench calibrate [--out PATH] [--max-bytes 4M] [--quick]

alpha, beta
    Ping-pong between ranks 0 and 1 through the communicator (``comm.send``/``comm.recv``,
    NumPy buffers): the one-way time of n bytes is half a round trip; a least-squares line
    t(n) = alpha + beta * n through the medians gives both (weighted by 1/t, so the small
    sizes set alpha and the large ones beta).
gamma
    Every rank at once adds two float32 buffers in place (``np.add(a, b, out=a)``, what a
    reduction step does) of 1 to 16 MiB, larger than the caches as gradients are; gamma is
    the median seconds per byte, slowest rank. (Below 1 MiB the buffers sit in cache and
    add faster, but there alpha dominates anyway.)
mpi
    MPI's own Allreduce at this p, fitted to a + b * n: the "mpi" line of the model.

The result goes to ~/.cache/minipar/calibration.json (or --out, or $MINIPAR_CALIBRATION)
and is read by ``minipar.parallel.costmodel.load()``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from minipar import launch
from minipar.errors import UserError
from minipar.parallel import costmodel as cm


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except ValueError:
        raise UserError(f"bad size {text!r}: use bytes or 64K, 4M, ...") from None


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
        buf = np.zeros(n, np.uint8)
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


def mpi_allreduce(comm, sizes, budget: float) -> list[float]:
    """Median seconds of MPI's Allreduce (float32, in place) per size, slowest rank."""
    out = []
    for n in sizes:
        buf = np.ones(n // 4, np.float32)
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce(buf)
        reps = _reps(comm, time.perf_counter() - t0, budget)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            comm.allreduce(buf)
            times.append(time.perf_counter() - t0)
        out.append(max(comm.allgather_obj(statistics.median(times))))
    return out


def _table(title, sizes, measured, a, b) -> str:
    lines = [title, f"{'bytes':>10} {'measured us':>12} {'fit us':>10} {'error':>7}"]
    for n, t in zip(sizes, measured):
        fit = a + b * n
        lines.append(f"{n:>10} {t * 1e6:>12.2f} {fit * 1e6:>10.2f} {100 * (fit / t - 1):>6.1f}%")
    return "\n".join(lines)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minipar.bench calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="where to save (default: costmodel.default_path())")
    ap.add_argument("--max-bytes", default="4M", help="largest message (default 4M)")
    ap.add_argument("--seconds", type=float, default=0.05, help="time budget per size")
    ap.add_argument("--quick", action="store_true", help="up to 256K, 5 ms per size (tests)")
    args = ap.parse_args(argv)
    top, budget = _size(args.max_bytes), args.seconds
    if args.quick:
        top, budget = min(top, 256 << 10), 0.005

    from minipar.parallel.comm import init  # only now: --help needs no MPI
    comm = init()
    if comm.size < 2:
        raise UserError("calibrate needs two ranks for its ping-pong: "
                        "mpiexec -n 2 python -m minipar.bench calibrate")
    msg_sizes = _sizes(8, top)
    red_sizes = _sizes(1 << 20, 16 << 20)
    comm.barrier()
    gam_t = [max(ts) for ts in zip(*comm.allgather_obj(reduction(red_sizes, budget)))]
    comm.barrier()
    p2p_t = ping_pong(comm, msg_sizes, budget)
    mpi_t = mpi_allreduce(comm, [n for n in msg_sizes if n >= 64], budget)
    if comm.rank != 0:
        return 0
    alpha, beta = cm.fit_line(msg_sizes, p2p_t)
    gamma = statistics.median(t / n for t, n in zip(gam_t, red_sizes))
    mpi_sizes = [n for n in msg_sizes if n >= 64]
    mpi_line = cm.fit_line(mpi_sizes, mpi_t)
    params = cm.CostParams(alpha, beta, gamma, mpi={comm.size: mpi_line},
                           source=f"calibrate on {comm.size} ranks, {time.strftime('%Y-%m-%d')}")
    print(_table("ping-pong (one way)", msg_sizes, p2p_t, alpha, beta))
    print(_table("float32 add (slowest rank)", red_sizes, gam_t, 0.0, gamma))
    print(_table(f"MPI Allreduce, p={comm.size}", mpi_sizes, mpi_t, *mpi_line))
    bw = f"{1 / beta / 1e9:.2f} GB/s" if beta > 0 else "inf"
    rate = f"{1 / gamma / 1e9:.2f} GB/s" if gamma > 0 else "inf"
    print(f"alpha {alpha * 1e6:.2f} us, beta {beta * 1e9:.4f} ns/B ({bw}), "
          f"gamma {gamma * 1e9:.4f} ns/B ({rate})")
    for note in comm.notes:
        print(f"note: {note}")
    print(f"saved {cm.save(params, args.out)}")
    sys.stdout.flush()
    return 0


main = launch.main_of(run)


if __name__ == "__main__":
    sys.exit(main())
