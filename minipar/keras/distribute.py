"""Data parallelism for the Keras-style API: what Horovod gives Keras users, exact and visible.

Under ``mpiexec -n p python script.py`` the same script trains data-parallel with no change:

- the model's parameters are broadcast from rank 0 when it is built (a binomial tree);
- ``batch_size`` is the GLOBAL batch: every rank shuffles the same way (same seed) and takes
  its contiguous block of each batch's rows (the first n mod p ranks one row more);
- rank r back-propagates S_r / n (S_r: the sum of its rows' losses, n: rows in the global
  batch), so the SUM over ranks of the gradients is the one-process gradient of the mean;
- gradients are summed by the chosen allreduce (ring by default) in buckets; an embedding
  table goes as (ids, rows) when that is smaller (``comm/sparse.py``); the step's loss and
  accuracy sums ride at the end of the last bucket, so every rank reports the same metrics;
- validation, ``evaluate`` and ``predict`` share rows out the same way; ``predict`` gathers
  the outputs with a ring allgather, so every rank returns all of them.

``Distribute`` chooses the algorithm, the sync method, and what is shown (the per-rank table
after ``fit``, a Chrome trace). It is given to ``compile(..., distribute=...)``.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from minipar.comm.collectives import allgather_ring, chunk_counts, get_allreduce, offsets
from minipar.comm.communicator import Comm, init
from minipar.core import threads
from minipar.core.errors import ConfigError, UserError
from minipar.training.sync import AllreduceSync, AverageSync, broadcast_parameters

SYNCS = ("allreduce", "average")
_WORLD: dict = {}  # the one world communicator of this process (MPI starts only once)


@dataclass
class Distribute:
    """How ``fit`` runs on several ranks; on one process it changes nothing.

    allreduce      "ring" (default), "tree", "rd", "naive", "mpi", "shm" or "module:function"
    sync           "allreduce": gradients summed every step (exact);
                   "average": local SGD, parameters and Adam's state averaged every
                   ``average_every`` steps (not the one-process result)
    sparse         send an embedding's gradient as (ids, rows) when that is smaller (True),
                   or always as the whole table (False, to compare)
    bucket_kb      gradient bucket size in KiB (each bucket one allreduce)
    overlap        start each bucket's allreduce during the backward pass, as soon as its
                   gradients are ready (any built-in algorithm; docs/communication.md)
    show_comm      print every message as it happens (rank, op, peer, bytes)
    table          print the per-rank communication table after ``fit`` (rank 0)
    trace          write a Chrome trace of ``fit`` here (and a PNG timeline beside it)
    """

    allreduce: str = "ring"
    sync: str = "allreduce"
    average_every: int = 8
    sparse: bool = True
    bucket_kb: int = 1024
    overlap: bool = False
    show_comm: bool = False
    table: bool = True
    trace: str | None = None

    def check(self) -> Distribute:
        get_allreduce(self.allreduce)  # a clear error for an unknown name, now
        if self.sync not in SYNCS:
            raise ConfigError(f"Distribute(sync={self.sync!r}): use one of {', '.join(SYNCS)}")
        if not (isinstance(self.bucket_kb, int) and self.bucket_kb > 0):
            raise ConfigError(f"Distribute(bucket_kb={self.bucket_kb!r}): must be a positive "
                              f"whole number")
        if self.average_every < 1:
            raise ConfigError(f"Distribute(average_every={self.average_every!r}): must be >= 1")
        return self


def world() -> Comm:
    """The world communicator (started on first use: traced, one rank without mpiexec)."""
    if "comm" not in _WORLD:
        comm = init(trace=True)
        if threads.NOTE:
            comm.notes.append(threads.NOTE)
        _WORLD["comm"] = comm
    return _WORLD["comm"]


def current_world() -> Comm | None:
    """The world communicator if one was started, else None (for the error hook)."""
    return _WORLD.get("comm")


def block(n: int, size: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous rows of n (the first n mod size ranks get one more)."""
    at = offsets(chunk_counts(n, size))
    return slice(at[rank], at[rank + 1])


def fingerprint(*arrays) -> np.ndarray:
    """Shape, dtype and a CRC-32 of the bytes of each array, as int64s."""
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        out += [a.ndim, *a.shape, zlib.crc32(str(a.dtype).encode()),
                zlib.crc32(memoryview(a).cast("B"))]
    return np.array(out, dtype=np.int64)


class DataParallel:
    """One compiled model's view of the ranks: its rows, its gradient sum, its metrics."""

    def __init__(self, config: Distribute):
        self.config = config.check()
        self.comm = world()
        self.comm.tracer.set(show=config.show_comm)
        self.size, self.rank = self.comm.size, self.comm.rank
        self.sync = None
        self.comm_s = 0.0  # seconds inside communication calls (fit resets it per epoch)

    def attach(self, params) -> None:
        """After the model is built: rank 0's parameters everywhere, and the sync method."""
        if self.size == 1:
            return
        broadcast_parameters(self.comm, params)
        if self.config.sync == "allreduce":
            self.sync = AllreduceSync(self.comm, params, self.config.allreduce,
                                      self.config.bucket_kb << 10, self.config.overlap,
                                      sparse=self.config.sparse)
        else:
            self.sync = AverageSync(self.comm, params, self.config.allreduce,
                                    self.config.average_every)

    def rows(self, n: int) -> slice:
        return block(n, self.size, self.rank)

    def step(self, optimizer, metrics: np.ndarray, local_rows: int, global_rows: int):
        """Sum the gradients (or step alone, for "average"), step the optimizer; returns the
        metric sums over every rank."""
        if self.size == 1:
            optimizer.step()
            return metrics
        if isinstance(self.sync, AllreduceSync):
            t0 = time.perf_counter()
            with self.comm.phase("sync"):
                summed = self.sync.finish(extra=metrics)
            self.comm_s += time.perf_counter() - t0
            optimizer.step()
            return summed
        before = self.sync.comm_s
        self.sync.step(optimizer, lambda: None, local_rows, global_rows)
        self.comm_s += self.sync.comm_s - before
        return self.reduce(metrics)

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Sum a small vector over the ranks (MPI's allreduce: one short message)."""
        out = np.array(values, dtype=np.float64)
        if self.size > 1:
            t0 = time.perf_counter()
            with self.comm.phase("metrics"):
                self.comm.allreduce(out)
            self.comm_s += time.perf_counter() - t0
        return out

    def gather_rows(self, mine: np.ndarray, n: int) -> np.ndarray:
        """Every rank's block of rows (``rows(n)``), in order, on every rank (ring allgather)."""
        if self.size == 1:
            return mine
        width = int(np.prod(mine.shape[1:]))
        counts = [len(range(*block(n, self.size, r).indices(n))) * width
                  for r in range(self.size)]
        at = offsets(counts)
        flat = np.empty(at[-1], dtype=mine.dtype)
        flat[at[self.rank]:at[self.rank + 1]] = mine.reshape(-1)
        with self.comm.phase("predict"):
            allgather_ring(self.comm, flat, counts)
        return flat.reshape(n, *mine.shape[1:])

    def same_data(self, what: str, *arrays) -> None:
        """Raise on every rank when the ranks were given different arrays (naming them)."""
        if self.size == 1:
            return
        mine = fingerprint(*arrays)
        lengths = np.empty(self.size, dtype=np.int64)
        self.comm.allgather(np.array([mine.size], dtype=np.int64), lengths)
        width = int(lengths.max())
        padded = np.full(width, -1, dtype=np.int64)
        padded[:mine.size] = mine
        every = np.empty((self.size, width), dtype=np.int64)
        with self.comm.phase("check"):
            self.comm.allgather(padded, every)
        odd = [r for r in range(self.size) if not np.array_equal(every[r], every[0])]
        if odd:
            err = UserError(f"{what}: rank{'s' * (len(odd) > 1)} {', '.join(map(str, odd))} "
                            f"got different data than rank 0; every rank must be given the "
                            f"same arrays (the same file, the same seed)")
            err.agreed = True
            raise err

    def report(self) -> None:
        """The per-rank table (rank 0) and the trace files, as ``Distribute`` asks."""
        if not self.config.trace and (self.size == 1 or not self.config.table):
            self.comm.tracer.events.clear()
            return
        png = None
        if self.config.trace:
            stem = self.config.trace[:-5] if self.config.trace.endswith(".json") else \
                self.config.trace
            png = stem + ".png"
        self.comm.report(chrome=self.config.trace, png=png,
                         table=self.config.table and self.rank == 0)
        self.comm.tracer.events.clear()  # the next fit reports its own calls
