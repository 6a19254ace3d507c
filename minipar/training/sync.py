"""Keeping the replicas in step: gradient allreduce, parameter averaging, parameter server.

Every rank holds a full copy of the model. Rank r back-propagates s_r / n, where s_r is the
sum of the loss terms of its rows and n = sum_r c_r the number of loss terms in the whole
global batch (every rank knows n: it builds the same global batch). One process would compute

    g = d/dw (sum_r s_r) / n = sum_r d(s_r / n)/dw

so the allreduce strategy only SUMS the gradients. A rank with no rows this step contributes
zeros and still takes part in every collective. The result is the one-process gradient
whatever the split (uneven shards included), up to float rounding.

Strategies (``make_sync``):
    allreduce  every step, gradients packed into buckets of ``bucket_bytes``, each bucket one
               allreduce (any algorithm of minipar.comm.collectives). With ``overlap``, a
               bucket's allreduce starts as soon as its last gradient is ready, while the
               backward pass goes on: MPI's own as one non-blocking Iallreduce; a
               hand-written one as its rounds (comm/inflight.py), one bucket in flight at a
               time, moved on between the backward pass's steps (autograd/pollers.py).
    average    local SGD: each rank steps on its own mean loss; every k steps parameters and the
               optimizer's state (Adam's m and v, SGD momentum) are averaged equally.
    ps         parameter server: workers send g_r and n_r to rank 0, which sums, steps the
               optimizer and sends the new parameters back to every worker. Synchronous.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from minipar.autograd import pollers
from minipar.core import backend

from minipar.core.backend import xp
from minipar.core.errors import ConfigError
from minipar.comm.collectives import (ALLREDUCE_STEPS, broadcast_tree, get_allreduce,
                                      start_allreduce)
from minipar.comm.sparse import allreduce_rows
from minipar.training.buckets import flat_size, make_buckets, pack, staged, unpack

STRATEGIES = ("allreduce", "average", "ps")
# A table smaller than this goes in the buckets like any gradient: sending it whole costs
# about what the extra exchange of row counts would (comm/sparse.py decides for larger ones).
SPARSE_MIN_BYTES = 64 << 10
TAG_PS_GRAD, TAG_PS_PARAM = 501, 502


class ReplicaDrift(RuntimeError):
    """Replicas that should hold identical parameters do not."""


def broadcast_parameters(comm, params, root: int = 0) -> None:
    """Every rank starts from root's parameters (one binomial-tree broadcast of all of them)."""
    if comm.size == 1:
        return
    arrays = [p.data for p in params]
    flat = np.empty(flat_size(arrays), dtype=np.dtype(arrays[0].dtype))
    if comm.rank == root:
        pack([(a, a.size) for a in arrays], flat, comm)
    with comm.phase("init"):
        broadcast_tree(comm, flat, root)
    unpack(flat, arrays, comm=comm)


def parameter_digest(params) -> str:
    h = hashlib.sha1()
    for p in params:
        h.update(np.ascontiguousarray(backend.to_numpy(p.data)).tobytes())
    return h.hexdigest()


def check_replicas(comm, params, step: int) -> None:
    """Raise ReplicaDrift on every rank if any two ranks' parameters differ in any bit."""
    with comm.phase("check-sync"):
        digests = comm.allgather_obj(parameter_digest(params))
    groups: dict[str, list[int]] = {}
    for r, d in enumerate(digests):
        groups.setdefault(d, []).append(r)
    if len(groups) > 1:
        parts = "; ".join(f"ranks {v} hold {k[:10]}" for k, v in groups.items())
        raise ReplicaDrift(f"replicas drifted apart at step {step}: {parts}")


class AllreduceSync:
    """Gradient allreduce in buckets; see the module docstring.

    Parameters marked ``sparse_grad`` (embedding tables) of at least SPARSE_MIN_BYTES stay
    out of the buckets: their gradient goes through ``comm.sparse.allreduce_rows``, as
    (ids, rows) when that is smaller. ``finish(extra)`` adds a few more numbers (a step's
    metrics) to the end of the last bucket, so they are summed by the same allreduce instead
    of one more round trip (with overlap they go on their own, after the buckets)."""

    name = "allreduce"
    # the trainer's per-step numbers (loss, stop requests) can ride with the gradients: after
    # the sum every rank holds the same gradients, so what it derives from them (their norm)
    # needs no collective of its own
    carries_metrics = True

    def __init__(self, comm, params, algorithm="ring", bucket_bytes=1 << 20, overlap=False,
                 sparse: bool = True):
        self.comm, self.params = comm, list(params)
        self.allreduce = get_allreduce(algorithm)
        if overlap and algorithm not in ALLREDUCE_STEPS and algorithm != "mpi":
            raise ConfigError(f"overlap works with the mpi, ring, tree, rd and naive "
                              f"allreduces, not {algorithm!r}, which runs whole when called")
        self.algorithm = algorithm
        self.sparse = [i for i, p in enumerate(self.params) if sparse
                       and getattr(p, "sparse_grad", False) and p.data.nbytes >= SPARSE_MIN_BYTES]
        dense = [p for i, p in enumerate(self.params) if i not in self.sparse]
        index = [i for i in range(len(self.params)) if i not in self.sparse]
        self.buckets = [[index[j] for j in b] for b in make_buckets(dense, bucket_bytes)]
        self.dtype = np.dtype(self.params[0].data.dtype)
        self.flats = [np.empty(flat_size([self.params[i].data for i in b]), self.dtype)
                      for b in self.buckets]
        self.sent_sparse = 0  # steps whose embedding gradients went as (ids, rows)
        self.overlap = comm.size > 1 and overlap and (algorithm in ALLREDUCE_STEPS
                                    or (algorithm == "mpi" and hasattr(comm, "iallreduce")))
        self._pending = {}  # bucket -> MPI request (overlap with MPI's allreduce)
        self._queue = []    # buckets ready, waiting for the hand-written one in flight
        self._flight = None  # the hand-written allreduce in flight
        self._rbuf = np.empty(0, self.dtype)  # its receive buffer (one in flight at a time)
        self._launched = 0
        self._extra = None
        self._with_extra = np.empty(0, self.dtype)  # the last bucket with the extra at its end
        if self.overlap:
            where = {i: k for k, b in enumerate(self.buckets) for i in b}
            self._left = [len(b) for b in self.buckets]
            for i in where:
                self.params[i].register_grad_hook(lambda _t, k=where[i]: self._ready(k))

    def _ready(self, k: int) -> None:
        self._left[k] -= 1
        # launch strictly in bucket order: every rank must start collectives in the same order
        while self._launched < len(self.buckets) and self._left[self._launched] == 0:
            self._launch(self._launched)

    def _launch(self, k: int) -> None:
        grads = [(self.params[i].grad, self.params[i].size) for i in self.buckets[k]]
        flat = self.flats[k]
        last = k == len(self.buckets) - 1
        # the metrics ride along at the end; not with overlap, where the last bucket may
        # leave during backward before they are known, on some ranks and not others (a
        # rank with no rows has no backward): every rank must send the same collectives
        if last and self._extra is not None and not self.overlap:
            n = flat.size
            if self._with_extra.size != n + self._extra.size:
                self._with_extra = np.empty(n + self._extra.size, self.dtype)
            flat = self._with_extra
            flat[n:] = self._extra
            pack(grads, flat[:n], self.comm)
        else:
            pack(grads, flat, self.comm)
        with self.comm.phase("sync"):
            if not self.overlap:
                self.allreduce(self.comm, flat)
            elif self.algorithm == "mpi":
                self._pending[k] = self.comm.iallreduce(flat)
            else:
                self._queue.append(flat)
                pollers.add(self._poll)
                self._move_on()
        self._launched += 1

    def _recv_buffer(self, n: int, dtype) -> np.ndarray:
        if self._rbuf.size < n:
            self._rbuf = np.empty(n, dtype)
        return self._rbuf[:n]

    def _move_on(self, wait: bool = False) -> None:
        """Start the queued buckets in order, one in flight at a time, and move the one in
        flight on; without ``wait`` only as far as the messages already here allow."""
        while self._flight is not None or self._queue:
            if self._flight is None:
                self._flight = start_allreduce(self.comm, self.algorithm, self._queue.pop(0),
                                               self._recv_buffer)
            if wait:
                self._flight.wait()
            elif not self._flight.poll():
                return
            self._flight = None

    def _poll(self) -> None:
        with self.comm.phase("sync"):
            self._move_on()

    def finish(self, extra: np.ndarray | None = None) -> np.ndarray | None:
        """After backward: launch what is left (in bucket order), wait, and write the summed
        gradients back into every parameter's ``.grad``. Returns ``extra`` summed over the
        ranks (when given)."""
        if self.comm.size == 1:  # one process: the sum is its own gradient, as it is
            for i in range(len(self.params)):
                self._grad(i)
            return None if extra is None else np.array(extra)  # as given: nothing to add
        if extra is not None:
            self._extra = np.asarray(extra, dtype=self.dtype)
        while self._launched < len(self.buckets):
            self._launch(self._launched)
        with self.comm.phase("sync"):
            self._move_on(wait=True)
        pollers.remove(self._poll)
        summed = None
        # the extra rode in the last bucket when there is one and no overlap (see _launch)
        rode = self._extra is not None and bool(self.buckets) and not self.overlap
        if self._extra is not None and not rode:
            # nothing dense to ride on, or overlap (see _launch): the few numbers go on their
            # own, in one MPI call (a hand-written ring takes 2(p-1) rounds, each costly when
            # ranks share cores); shm, with its sleeping waits, sums them itself
            with self.comm.phase("sync"):
                if self.algorithm == "shm":
                    self.allreduce(self.comm, self._extra)
                else:
                    self.comm.allreduce(self._extra)
            summed = self._extra.copy()
        for k, b in enumerate(self.buckets):
            if k in self._pending:
                with self.comm.phase("sync"):
                    self.comm.wait(self._pending.pop(k))
            flat = self.flats[k]
            if k == len(self.buckets) - 1 and rode:
                summed = self._with_extra[flat.size:].copy()
                flat = self._with_extra[:flat.size]
            unpack(flat, [self._grad(i) for i in b], comm=self.comm)
        for i in self.sparse:
            grad = self._grad(i)
            with staged(self.comm if backend.on_device(grad) else None, "d2h", grad.nbytes):
                g = np.ascontiguousarray(backend.to_numpy(grad))
            with self.comm.phase("sync"):
                self.sent_sparse += allreduce_rows(self.comm, g, self.allreduce)
            with staged(self.comm if backend.on_device(grad) else None, "h2d", g.nbytes):
                self.params[i].grad = backend.from_numpy(g, dtype=self.params[i].dtype)
        self._launched, self._extra = 0, None
        if self.overlap:
            self._left = [len(b) for b in self.buckets]
        return summed

    def _grad(self, i: int):
        p = self.params[i]
        if p.grad is None:
            p.grad = xp.zeros_like(p.data)
        return p.grad

    def step(self, optimizer, clip, local_count: int, global_count: int,
             extra: np.ndarray | None = None) -> np.ndarray | None:
        """Sum the gradients (and ``extra``, riding with them: returned summed), clip, step."""
        summed = self.finish(extra)
        clip()
        optimizer.step()
        return summed


class AverageSync:
    """Local SGD: step alone on the local mean gradient, average parameters (and optimizer
    state) every ``every`` steps: w = (1/p) sum_r w_r."""

    name = "average"
    carries_metrics = False  # ranks clip different gradients: the trainer sums its own flags

    def __init__(self, comm, params, algorithm="ring", every=4):
        if every < 1:
            raise ConfigError(f"--average-every must be at least 1, got {every}")
        self.comm, self.params, self.every = comm, list(params), every
        self.allreduce = get_allreduce(algorithm)
        self.t = 0
        self.comm_s = 0.0  # seconds spent averaging (the only communication)

    def _average(self, arrays) -> None:
        t0 = time.perf_counter()
        flat = np.empty(flat_size(arrays), np.dtype(arrays[0].dtype))
        pack([(a, a.size) for a in arrays], flat, self.comm)
        with self.comm.phase("sync"):
            self.allreduce(self.comm, flat)
        unpack(flat, arrays, 1.0 / self.comm.size, self.comm)
        self.comm_s += time.perf_counter() - t0

    def step(self, optimizer, clip, local_count: int, global_count: int) -> None:
        # each rank back-propagated s_r / n; its own mean needs s_r / c_r
        if local_count > 0:
            scale = global_count / local_count
            for p in self.params:
                if p.grad is not None:
                    p.grad *= scale
            clip()
            optimizer.step()
        else:
            optimizer.t += 1  # no data this step: keep the step count in agreement
        self.t += 1
        if self.t % self.every == 0 and self.comm.size > 1:
            self._average([p.data for p in self.params])
            for slot in optimizer.state.values():
                self._average(slot)


class ParameterServerSync:
    """Rank 0 is the server: it receives every worker's gradient (one message each), adds
    its own, steps the optimizer, and sends the parameters back to every worker."""

    name = "ps"
    carries_metrics = False  # ranks clip different gradients: the trainer sums its own flags

    def __init__(self, comm, params):
        self.comm, self.params = comm, list(params)
        self.dtype = np.dtype(self.params[0].data.dtype)
        self.n = flat_size([p.data for p in self.params])

    def step(self, optimizer, clip, local_count: int, global_count: int) -> None:
        c, params = self.comm, self.params
        grads = pack([(p.grad, p.size) for p in params], np.empty(self.n, self.dtype), c)
        with c.phase("sync"):
            if c.rank == 0:
                incoming = np.empty_like(grads)
                for src in range(1, c.size):  # fixed order: the sum is the same every run
                    c.recv(incoming, src, TAG_PS_GRAD, note="push gradients")
                    grads += incoming
            else:
                c.send(grads, 0, TAG_PS_GRAD, note="push gradients")
        flat = np.empty(self.n, self.dtype)
        if c.rank == 0:
            for p in params:
                if p.grad is None:
                    p.grad = xp.zeros_like(p.data)
            unpack(grads, [p.grad for p in params], comm=c)
            clip()
            optimizer.step()
            pack([(p.data, p.size) for p in params], flat, c)
        with c.phase("sync"):
            if c.rank == 0:
                for dst in range(1, c.size):
                    c.send(flat, dst, TAG_PS_PARAM, note="pull parameters")
            else:
                c.recv(flat, 0, TAG_PS_PARAM, note="pull parameters")
        if c.rank != 0:
            unpack(flat, [p.data for p in params], comm=c)
            optimizer.t += 1  # keeps the step count (and bias correction) in agreement


def make_sync(name: str, comm, params, algorithm="ring", bucket_bytes=1 << 20, overlap=False,
              every=4):
    if name == "allreduce":
        return AllreduceSync(comm, params, algorithm, bucket_bytes, overlap)
    if name == "average":
        return AverageSync(comm, params, algorithm, every)
    if name == "ps":
        return ParameterServerSync(comm, params)
    raise ConfigError(f"unknown --sync {name!r}: use one of {', '.join(STRATEGIES)}")
