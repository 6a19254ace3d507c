"""A one-rank stand-in for mpi4py's communicator, used without mpi4py or outside mpiexec.

It offers the few pieces of mpi4py's buffer interface that ``comm.py`` calls (``Send``,
``Irecv``, ``Allreduce`` and friends, ``Status``, ``Request.Testall``), so ``comm.py`` runs
the same code on one process as on many. With one rank every collective is a copy from
the send buffer to the receive buffer (or nothing, when in place), and a message to oneself
is queued until it is received. A receive that no send can ever match raises at once
instead of hanging: with a single rank nobody else could send it.
"""

from __future__ import annotations

import os
import sys
from collections import deque

import numpy as np

IN_PLACE = object()
ANY_SOURCE = -1
ANY_TAG = -1
UNDEFINED = -32766
SUM, PROD, MAX, MIN = "sum", "prod", "max", "min"


class Status:
    def __init__(self):
        self.source, self.tag, self.nbytes = ANY_SOURCE, ANY_TAG, 0

    def Get_source(self):
        return self.source

    def Get_tag(self):
        return self.tag

    def Get_count(self, datatype=None):
        return self.nbytes


class Request:
    """A finished request, or a receive from oneself waiting for its message."""

    def __init__(self, comm=None, buf=None, tag=ANY_TAG):
        self.comm, self.buf, self.tag, self.done = comm, buf, tag, comm is None

    def Test(self, status=None):
        if not self.done:
            self.done = self.comm._take(self.buf, self.tag, status)
        return self.done

    def Wait(self, status=None):
        if not self.Test(status):
            raise RuntimeError(f"recv from r0 tag {self.tag} has no matching send: "
                               "with one rank it would wait forever")

    @staticmethod
    def Testall(requests, statuses=None):
        sts = statuses or [None] * len(requests)
        return all([r.Test(s) for r, s in zip(requests, sts)])

    @staticmethod
    def Waitall(requests, statuses=None):
        for r, s in zip(requests, statuses or [None] * len(requests)):
            r.Wait(s)


def _arr(spec):
    """``buf`` or an mpi4py vector spec ``[buf, (counts, displs)]`` -> the flat array."""
    a = spec[0] if isinstance(spec, (list, tuple)) else spec
    return a.reshape(-1)


def _copy(src, dst):
    if src is IN_PLACE or src is None or dst is None:
        return
    a, b = _arr(src), _arr(dst)
    n = min(a.size, b.size)
    b[:n] = a[:n]


class SelfComm:
    """The communicator of a run with one rank."""

    def __init__(self):
        self._queue = deque()  # (tag, copy of the message), oldest first

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def _check_peer(self, peer):
        if peer not in (0, ANY_SOURCE):
            raise ValueError(f"rank {peer} does not exist: this run has one rank (r0)")

    def _take(self, buf, tag, status) -> bool:
        for i, (t, data) in enumerate(self._queue):
            if tag in (ANY_TAG, t):
                del self._queue[i]
                flat = buf.reshape(-1).view(np.uint8)
                raw = data.reshape(-1).view(np.uint8)
                if raw.size > flat.size:
                    raise ValueError(f"message of {raw.size} bytes does not fit "
                                     f"a {flat.size}-byte buffer")
                flat[:raw.size] = raw
                if status is not None:
                    status.source, status.tag, status.nbytes = 0, t, raw.size
                return True
        return False

    def Send(self, buf, dest, tag=0):
        self._check_peer(dest)
        self._queue.append((tag, np.array(buf, copy=True)))

    def Isend(self, buf, dest, tag=0):
        self.Send(buf, dest, tag)
        return Request()

    def Irecv(self, buf, source=ANY_SOURCE, tag=ANY_TAG):
        self._check_peer(source)
        return Request(self, buf, tag)

    def Recv(self, buf, source=ANY_SOURCE, tag=ANY_TAG, status=None):
        self.Irecv(buf, source, tag).Wait(status)

    def Sendrecv(self, sendbuf, dest, sendtag=0, recvbuf=None, source=ANY_SOURCE,
                 recvtag=ANY_TAG, status=None):
        self.Send(sendbuf, dest, sendtag)
        self.Recv(recvbuf, source, recvtag, status)

    # Every collective on one rank: copy the first buffer into the second (or nothing).
    def Allreduce(self, sendbuf, recvbuf, op=SUM):
        _copy(sendbuf, recvbuf)

    def Reduce(self, sendbuf, recvbuf, op=SUM, root=0):
        _copy(sendbuf, recvbuf)

    def Allgather(self, sendbuf, recvbuf):
        _copy(sendbuf, recvbuf)

    Allgatherv = Alltoall = Alltoallv = Allgather

    def Reduce_scatter(self, sendbuf, recvbuf, recvcounts=None, op=SUM):
        _copy(sendbuf, recvbuf)

    def Reduce_scatter_block(self, sendbuf, recvbuf, op=SUM):
        _copy(sendbuf, recvbuf)

    def Gather(self, sendbuf, recvbuf, root=0):
        _copy(sendbuf, recvbuf)

    Gatherv = Scatter = Scatterv = Gather

    def Bcast(self, buf, root=0):
        pass

    def Barrier(self):
        pass

    def __getattr__(self, name):
        # Iallreduce, Ibcast, ...: done at once, returned as a finished request.
        if name.startswith("I") and name[1:2].islower():
            blocking = getattr(self, name[1].upper() + name[2:])

            def start(*args):
                blocking(*args)
                return Request()
            return start
        raise AttributeError(name)

    def Split(self, color=0, key=0):
        return None if color == UNDEFINED else SelfComm()

    def Abort(self, errorcode=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(errorcode)
