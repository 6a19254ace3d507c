"""Allreduce through one host's shared memory, with waits that sleep instead of spinning.

When ranks outnumber cores (``mpiexec -n 4`` on a 2-core laptop) every message costs a
trip through the scheduler: MPICH's waiting ranks spin, and with heavy yield they hand the
core back only at the scheduler's pleasure, so the rank they wait for runs late. Measured
here, 4 ranks on 2 cores: MPI's Allreduce of 280 KB took 1.0 ms against 0.08 ms on 2 ranks,
and an MPI barrier 0.47 ms (docs/benchmarks.md, "Shared memory and sleeping waits").

``--allreduce shm`` takes the other road, for ranks that share one host:

- **Data** goes through an MPI-3 shared window (``MPI.Win.Allocate_shared``): every rank
  can read every other rank's slot as plain memory, so nothing is sent.
- **Waiting** happens in the kernel. Each rank has a named pipe (a FIFO); a rank that must
  wait reads one byte from its pipe and sleeps until another rank writes it. The core goes
  at once to a rank with work, and the kernel wakes the sleeper as soon as the byte lands.

One allreduce of ``n`` elements on ``p`` ranks, slots ``S[0..p-1]`` (two sets, used in
turns, so a call never writes a set that a slower rank may still be reading):

    S[r] = x_r                      every rank writes its own slot
    barrier                         (everyone has written)
    small n:  x = S[0] + ... + S[p-1]          every rank adds all slots itself
    large n:  S[0][c_r] = S[0][c_r] + ... + S[p-1][c_r]   rank r adds its chunk c_r,
                                         c_r = [n r / p, n (r+1) / p)
              barrier                (every chunk is added)
              x = S[0]               every rank copies the sum out

The slots are added in rank order in both cases, so every rank holds the same bits. Cost:
one or two barriers (each a message to rank 0 and one back: ``2 * alpha_wake``), and
``n`` (or ``p n``, small case) elements read per rank: no ``beta`` term for a network.

The barrier: every rank writes a byte to rank 0's pipe; rank 0 reads ``p - 1`` of them and
writes one byte to each of the others. The pipes are unlinked as soon as every rank has
opened them, so nothing is left behind, even when a job is killed.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time

import numpy as np

from minipar.core.errors import ConfigError

__all__ = ["allreduce", "HostMemory", "SMALL_BYTES", "one_host"]

# below this the one-barrier form (each rank adds every slot) is cheaper than a second
# barrier; measured on 4 ranks on 2 cores (docs/benchmarks.md)
SMALL_BYTES = 16 << 10


def _ranks_here(comm) -> int:
    """How many ranks of ``comm`` share this rank's host (a collective call)."""
    if comm.size == 1:
        return 1
    local = comm._c.Split_type(comm._M.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def one_host(comm) -> bool:
    """Whether every rank of ``comm`` runs on this host (a collective call)."""
    return _ranks_here(comm) == comm.size


class HostMemory:
    """A communicator's shared slots and doorbell pipes; made on the first ``allreduce_shm``
    (a collective call: every rank makes it at the same time)."""

    def __init__(self, comm):
        M, raw = comm._M, comm._c
        here = _ranks_here(comm)
        if here != comm.size:
            raise ConfigError(f"allreduce shm: the {comm.size} ranks are on "
                              f"{comm.size // max(here, 1)} or more hosts; it needs "
                              f"them all on one host (use ring, tree, rd, naive or mpi)")
        self.comm, self.M = comm, M
        self.rank, self.size = comm.rank, comm.size
        self.calls = 0
        self.win, self.slots, self.capacity = None, None, 0
        self._open_pipes(raw)

    # ---- the doorbells ----------------------------------------------------------------
    def _open_pipes(self, raw) -> None:
        where = raw.bcast(tempfile.mkdtemp(prefix="minipar-shm-") if self.rank == 0 else None)
        mine = os.path.join(where, str(self.rank))
        os.mkfifo(mine, 0o600)
        raw.Barrier()
        self.inbox = os.open(mine, os.O_RDWR)  # read-write: opening never blocks, never EOF
        others = range(1, self.size) if self.rank == 0 else [0]
        self.out = {q: os.open(os.path.join(where, str(q)), os.O_WRONLY) for q in others}
        raw.Barrier()  # every pipe is open: the names can go
        os.unlink(mine)
        raw.Barrier()
        if self.rank == 0:
            shutil.rmtree(where, ignore_errors=True)

    def _take(self, n: int, ev) -> None:
        """Sleep until ``n`` bytes have come to this rank's pipe (the watchdog's deadline
        holds here as in every other wait)."""
        timeout = self.comm._timeout
        deadline = None if timeout is None else time.perf_counter() + timeout
        while n:
            if deadline is not None:
                left = deadline - time.perf_counter()
                if left <= 0 or not select.select([self.inbox], [], [], left)[0]:
                    raise self.comm._stalled(ev)
            n -= len(os.read(self.inbox, n))

    def barrier(self, ev=None) -> None:
        """Everyone has arrived: ``p - 1`` bytes to rank 0, then one back to each."""
        if self.rank == 0:
            self._take(self.size - 1, ev)
            for fd in self.out.values():
                os.write(fd, b"\0")
        else:
            os.write(self.out[0], b"\0")
            self._take(1, ev)

    # ---- the slots ----------------------------------------------------------------------
    def slots_for(self, nbytes: int, dtype) -> np.ndarray:
        """This call's ``(p, n)`` view of a slot set (grown to ``nbytes`` per slot if needed:
        every rank asks for the same size, so they grow together)."""
        if nbytes > self.capacity:
            self.close_window()
            self.capacity = max(nbytes, 2 * self.capacity, 4096)
            whole = 2 * self.size * self.capacity if self.rank == 0 else 0
            self.win = self.M.Win.Allocate_shared(whole, 1, comm=self.comm._c)
            mem, _ = self.win.Shared_query(0)
            self.slots = np.frombuffer(mem, np.uint8).reshape(2, self.size, self.capacity)
        part = self.slots[self.calls & 1][:, :nbytes]
        self.calls += 1
        return part.view(dtype)

    def close_window(self) -> None:
        if self.win is not None:
            self.slots = None
            self.win.Free()
            self.win, self.capacity = None, 0


def allreduce(comm, x: np.ndarray) -> None:
    """Sum the flat array ``x`` in place over the ranks of one host through shared memory,
    waiting in the kernel (see the module docstring). ``collectives.allreduce_shm`` is the
    public form, for arrays of any shape."""
    with comm.collective("allreduce", "shm", x) as ev:
        if comm.size == 1 or x.size == 0:
            return
        host = comm.host_memory
        if host is None:
            host = comm.host_memory = HostMemory(comm)
        p, r = host.size, host.rank
        S = host.slots_for(x.nbytes, x.dtype)
        S[r] = x
        host.barrier(ev)
        if x.nbytes <= SMALL_BYTES:
            np.copyto(x, S[0])
            for q in range(1, p):
                x += S[q]
            return
        mine = slice(x.size * r // p, x.size * (r + 1) // p)
        acc = S[0, mine]
        for q in range(1, p):
            acc += S[q, mine]
        host.barrier(ev)
        np.copyto(x, S[0])
