"""MPI's own collectives, traced, and the small-object helpers built on them.

A mixin of :class:`~minipar.comm.communicator.Comm` (which holds the communicator, the tracer
and the one place that waits); kept apart so each file reads in one sitting. Every method
takes NumPy buffers and goes through ``_coll``: count the collective, check the
fingerprint when the desync guard is on, record an event when the tracer is on, and call
MPI (blocking, or non-blocking and polled when a timeout is set).

Bytes recorded for these calls are the buffers handed to MPI (what this rank contributes
and receives), not the traffic of whatever algorithm MPI picks inside.
"""

from __future__ import annotations

import functools
import operator
import pickle

import numpy as np

from minipar.comm.requests import Req

_OBJ_OPS = {"sum": operator.add, "max": max, "min": min, "and": operator.and_,
            "or": operator.or_}


class MPICollectives:
    """allreduce, bcast, reduce, allgather(v), reduce_scatter, alltoall(v), gather(v),
    scatter, barrier; and bcast_obj, allgather_obj, gather_obj, allreduce_obj."""

    def _coll(self, op, name, args, count, dtype, sent, recv, root=-1):
        self._cseq += 1
        if self.check_collectives:
            self._check(op, "mpi", count, dtype, root)
        if not self.tracer.on:
            self._blocking(name, args, None)
            return
        note = f"root r{self._world[root]}" if root >= 0 else ""
        ev = self._begin("mpi", op, (), sent, recv, -1, note, "mpi", self._cseq)
        self._blocking(name, args, ev)
        self._end(ev)

    def _op(self, op):
        try:
            return self._ops[op]
        except KeyError:
            raise ValueError(f"unknown reduction {op!r}: use sum, max, min or prod") from None

    def allreduce(self, buf, out=None, op: str = "sum"):
        """MPI_Allreduce, in place unless ``out`` is given; returns the result array."""
        args = (self._M.IN_PLACE, buf, self._op(op)) if out is None else (buf, out, self._op(op))
        self._coll("allreduce", "Allreduce", args, buf.size, buf.dtype, buf.nbytes, buf.nbytes)
        return buf if out is None else out

    def iallreduce(self, buf, op: str = "sum"):
        """MPI_Iallreduce in place: starts the sum and returns a request; ``comm.wait(req)``
        finishes it. Gradient buckets use it to overlap the sum with the backward pass."""
        self._cseq += 1
        if self.check_collectives:
            self._check("allreduce", "mpi", buf.size, buf.dtype, -1)
        ev = None
        if self.tracer.on:
            ev = self._begin("mpi", "iallreduce", (), buf.nbytes, buf.nbytes, -1, "", "mpi",
                             self._cseq)
        raw = self._c.Iallreduce(self._M.IN_PLACE, buf, self._op(op))
        return Req(raw, ev, None, False)

    def bcast(self, buf, root: int = 0):
        """MPI_Bcast from ``root`` into ``buf`` everywhere."""
        me = self.rank == root
        self._coll("bcast", "Bcast", (buf, root), buf.size, buf.dtype, buf.nbytes * me,
                   buf.nbytes * (not me), root)
        return buf

    def reduce(self, buf, out=None, root: int = 0, op: str = "sum"):
        """MPI_Reduce to ``root`` (in place there unless ``out``); others' buffers are inputs."""
        me = self.rank == root
        if me and out is None:
            args = (self._M.IN_PLACE, buf, self._op(op), root)
        else:
            args = (buf, out, self._op(op), root)
        self._coll("reduce", "Reduce", args, buf.size, buf.dtype, buf.nbytes * (not me),
                   buf.nbytes * me, root)
        return (buf if out is None else out) if me else None

    def allgather(self, sendbuf, recvbuf):
        """MPI_Allgather: ``recvbuf`` (size * len(sendbuf)) gets every rank's block in order."""
        self._coll("allgather", "Allgather", (sendbuf, recvbuf), recvbuf.size, recvbuf.dtype,
                   sendbuf.nbytes, recvbuf.nbytes)
        return recvbuf

    def allgatherv(self, sendbuf, recvbuf, counts):
        """MPI_Allgatherv with ``counts[r]`` elements from rank r, packed in rank order."""
        self._coll("allgatherv", "Allgatherv", (sendbuf, [recvbuf, (list(counts), None)]),
                   recvbuf.size, recvbuf.dtype, sendbuf.nbytes, recvbuf.nbytes)
        return recvbuf

    def reduce_scatter(self, sendbuf, recvbuf, counts=None, op: str = "sum"):
        """MPI_Reduce_scatter: rank r gets the reduced block r (``counts[r]`` elements;
        equal blocks when ``counts`` is None)."""
        if counts is None:
            name, args = "Reduce_scatter_block", (sendbuf, recvbuf, self._op(op))
        else:
            name, args = "Reduce_scatter", (sendbuf, recvbuf, list(counts), self._op(op))
        self._coll("reduce_scatter", name, args, sendbuf.size, sendbuf.dtype, sendbuf.nbytes,
                   recvbuf.nbytes)
        return recvbuf

    def alltoall(self, sendbuf, recvbuf):
        """MPI_Alltoall: block j of ``sendbuf`` goes to rank j, block i of ``recvbuf`` is from i."""
        self._coll("alltoall", "Alltoall", (sendbuf, recvbuf), sendbuf.size, sendbuf.dtype,
                   sendbuf.nbytes, recvbuf.nbytes)
        return recvbuf

    def alltoallv(self, sendbuf, sendcounts, recvbuf, recvcounts):
        """MPI_Alltoallv with per-rank counts, blocks packed in rank order."""
        args = ([sendbuf, (list(sendcounts), None)], [recvbuf, (list(recvcounts), None)])
        self._coll("alltoallv", "Alltoallv", args, -1, sendbuf.dtype, sendbuf.nbytes,
                   recvbuf.nbytes)
        return recvbuf

    def gather(self, sendbuf, recvbuf=None, root: int = 0):
        """MPI_Gather to ``root`` (``recvbuf`` needed there only)."""
        me = self.rank == root
        self._coll("gather", "Gather", (sendbuf, recvbuf if me else None, root), sendbuf.size,
                   sendbuf.dtype, sendbuf.nbytes, recvbuf.nbytes if me else 0, root)
        return recvbuf if me else None

    def gatherv(self, sendbuf, recvbuf=None, counts=None, root: int = 0):
        """MPI_Gatherv: ``counts[r]`` elements from rank r, packed in rank order at ``root``."""
        me = self.rank == root
        spec = [recvbuf, (list(counts), None)] if me else None
        self._coll("gatherv", "Gatherv", (sendbuf, spec, root), -1, sendbuf.dtype, sendbuf.nbytes,
                   recvbuf.nbytes if me else 0, root)
        return recvbuf if me else None

    def scatter(self, sendbuf, recvbuf, root: int = 0):
        """MPI_Scatter from ``root`` (``sendbuf`` read there only): block r to rank r."""
        me = self.rank == root
        self._coll("scatter", "Scatter", (sendbuf if me else None, recvbuf, root), recvbuf.size,
                   recvbuf.dtype, sendbuf.nbytes if me else 0, recvbuf.nbytes, root)
        return recvbuf

    def barrier(self) -> None:
        self._coll("barrier", "Barrier", (), 0, None, 0, 0)

    # ---- small Python objects: pickled, for agreeing on errors and configuration ----
    def bcast_obj(self, obj, root: int = 0):
        n = np.zeros(1, np.int64)
        data = _dumps(obj) if self.rank == root else None
        if data is not None:
            n[0] = data.size
        self.bcast(n, root)
        if data is None:
            data = np.empty(int(n[0]), np.uint8)
        self.bcast(data, root)
        return obj if self.rank == root else pickle.loads(data.tobytes())

    def allgather_obj(self, obj) -> list:
        data = _dumps(obj)
        sizes = self.allgather(np.array([data.size], np.int64), np.empty(self.size, np.int64))
        out = self.allgatherv(data, np.empty(int(sizes.sum()), np.uint8), sizes.tolist())
        return _split_loads(out, sizes)

    def gather_obj(self, obj, root: int = 0):
        data = _dumps(obj)
        me = self.rank == root
        sizes = self.gather(np.array([data.size], np.int64), np.empty(self.size, np.int64), root)
        out = np.empty(int(sizes.sum()) if me else 0, np.uint8)
        self.gatherv(data, out, sizes.tolist() if me else None, root)
        return _split_loads(out, sizes) if me else None

    def allreduce_obj(self, obj, op="sum"):
        """Reduce small objects over ranks: ``op`` is sum/max/min/and/or or a function of two."""
        fn = _OBJ_OPS.get(op, op)
        if not callable(fn):
            raise ValueError(f"unknown reduction {op!r}: use {', '.join(_OBJ_OPS)} or a function")
        return functools.reduce(fn, self.allgather_obj(obj))


def _dumps(obj):
    return np.frombuffer(bytearray(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)), np.uint8)


def _split_loads(data, sizes) -> list:
    offs = np.concatenate([[0], np.cumsum(sizes)])
    return [pickle.loads(data[offs[i]:offs[i + 1]].tobytes()) for i in range(len(sizes))]
