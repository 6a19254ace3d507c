"""The communicator: the only module that talks to mpi4py, and it records every call.

    comm = init(trace=True, show_comm=True)        # the world; one rank without mpiexec
    comm.set_step(3)
    with comm.phase("sync"):
        comm.allreduce(grad)                       # MPI's own, in place
    comm.report(chrome="trace.json", png="timeline.png")   # table on rank 0, files

Point-to-point (``send``, ``recv``, ``sendrecv``, ``isend``/``irecv`` + ``wait``) and MPI's
collectives take NumPy buffers (mpi4py's upper-case calls, no pickling); ``*_obj`` helpers
carry small Python objects. Each call becomes a :class:`~minipar.comm.trace.Event`
when the tracer is on; when it is off a call costs one extra ``if``.

Reliability, built in:

- **Stall watchdog.** ``comm.set_timeout(seconds)``: every wait goes through
  :meth:`Comm._wait`, which then posts the non-blocking form (``Isend``, ``Iallreduce``...)
  and polls it; past the deadline it raises :class:`CommTimeout` naming this rank, the
  call, peer, tag and step, with this rank's last calls. The caller then ``comm.abort()``s.
- **Desync guard.** ``comm.check_collectives = True``: every collective first allgathers a
  fingerprint (sequence number, op, algorithm, length, dtype, root); ranks that disagree
  raise :class:`CollectiveMismatch` naming who called what.
- **Oversubscription.** When the launcher puts more ranks on this host than it has cores,
  ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1`` is set before MPI starts, so waiting ranks yield the
  CPU instead of spinning (see ``Comm.notes``). mpi4py's thread level is left as it is.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from minipar.comm import trace as T
from minipar.comm import watchdog
from minipar.comm.mpi_collectives import MPICollectives
from minipar.comm.requests import Req
from minipar.comm.spans import NOOP, CollSpan, CopySpan, Phase
from minipar.comm.timeline import write_png
from minipar.comm.trace import Event, Tracer
from minipar.comm.watchdog import CollectiveMismatch, CommTimeout
from minipar.comm.world import HEAVY_YIELD_VAR, cuda_aware, mpi4py_version, open_world

__all__ = ["Comm", "Req", "init", "CommTimeout", "CollectiveMismatch", "HEAVY_YIELD_VAR"]

# With a timeout, a wait polls MPI_Testall. MPI advances a nonblocking collective only
# inside such calls, so sleeping between them stretched MPI's Allreduce of 280 KiB on 2
# ranks from 0.06 ms to 3 ms inside minipar.train. Waits call it again at once for this
# long before sleeping; when ranks outnumber cores (heavy yield) they yield the core between
# calls, as MPICH's own heavy yield does, since the rank they wait for may need it.
SPIN_S = 0.005


def init(trace: bool = False, show_comm: bool = False, timeout: float | None = None,
         check_collectives: bool = False, stream=None) -> Comm:
    """The world communicator. Call once per process, on every rank."""
    M, raw, notes = open_world()
    rank = raw.Get_rank()
    comm = Comm(raw, M, name="world", tracer=Tracer(rank, show=show_comm, stream=stream),
                timeout=timeout, check_collectives=check_collectives)
    comm.notes = notes
    comm.heavy_yield = os.environ.get(HEAVY_YIELD_VAR) == "1"
    comm.cuda_aware, comm.cuda_note = cuda_aware(M)
    if comm.backend == "mpi":
        first = " ".join(M.Get_library_version().split()[:3])  # "MPICH Version: 5.0.2"
        comm.library = f"{first}, mpi4py {mpi4py_version()}"
    if trace:
        raw.Barrier()  # line the ranks' clocks up (untraced: it is part of starting the tracer)
        comm.tracer.origin = time.perf_counter()
        comm.tracer.set(enabled=True)
    return comm


class Comm(MPICollectives):
    """A communicator (the world or one split from it) with traced, buffer-based calls.

    ``rank``/``size`` are within this communicator; events name peers by world rank.
    Tags of 20000 and above are reserved for the hand-written collectives.
    """

    def __init__(self, raw, M, name="world", tracer=None, timeout=None, check_collectives=False,
                 world=None):
        self._c, self._M = raw, M
        self.rank, self.size, self.name = raw.Get_rank(), raw.Get_size(), name
        self._world = world if world is not None else list(range(self.size))
        self.world_rank = self._world[self.rank]
        self.tracer = tracer or Tracer(self.world_rank)
        self.check_collectives = check_collectives
        self.notes: list[str] = []
        self.heavy_yield = False
        self.cuda_aware, self.cuda_note = False, "not checked"
        self.library = "none (one rank without MPI)"
        self.backend = "self" if M.__name__.endswith("selfcomm") else "mpi"
        self._seq = self._cseq = 0
        self._ctx: list = []  # (algo, op) of the hand-written collectives we are inside
        self._nout: dict = {}
        self._nin: dict = {}
        self._ops = {"sum": M.SUM, "max": M.MAX, "min": M.MIN, "prod": M.PROD}
        self._timeout = None
        self.set_timeout(timeout)
        self.host_memory = None  # shared slots and pipes of allreduce_shm, made on first use

    # ---- configuration -------------------------------------------------------------
    def set_timeout(self, seconds: float | None) -> None:
        """Deadline for each call (None: block as MPI does). Turns on the stall history."""
        if seconds is not None and not seconds > 0:
            raise ValueError(f"communication timeout must be positive seconds or None, "
                             f"not {seconds!r}")
        self._timeout = seconds
        if seconds is not None:
            self.tracer.set(watch=True)

    def set_step(self, step) -> None:
        """The training step recorded on the calls that follow."""
        self.tracer.step = step

    def phase(self, name: str):
        """``with comm.phase("backward"):`` marks the calls made inside."""
        return Phase(self.tracer, name)

    def split(self, color, key: int = 0, name: str | None = None) -> Comm | None:
        """MPI_Comm_split; ``color=None`` leaves this rank out (returns None)."""
        M = self._M
        self._cseq += 1
        ev = self._begin("mpi", "split", (), 0, 0, -1, f"color {color}", "mpi", self._cseq) \
            if self.tracer.on else None
        raw = self._c.Split(M.UNDEFINED if color is None else color, key)  # no I-form in MPI
        if ev is not None:
            self._end(ev)
        if color is None:
            return None
        if self.backend == "mpi":
            world = M.Group.Translate_ranks(raw.Get_group(), list(range(raw.Get_size())),
                                            M.COMM_WORLD.Get_group())
        else:
            world = [self.world_rank]
        sub = Comm(raw, M, name or f"{self.name}/{color}", self.tracer, self._timeout,
                   self.check_collectives, list(world))
        sub.notes, sub.heavy_yield = self.notes, self.heavy_yield
        return sub

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (MPI_Abort), after flushing this rank's output."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._c.Abort(code)

    # ---- events ----------------------------------------------------------------------
    def _begin(self, kind, op, peers, sent, recv, tag, note, algo="", cseq=None):
        tr = self.tracer
        self._seq += 1
        algo_, coll = self._ctx[-1] if (self._ctx and kind == "p2p") else (algo, "")
        ev = Event(self.world_rank, self.name, kind, op, algo_, coll, peers, sent, recv, tag,
                   tr.step, tr.phase, note, len(self._ctx), self._seq, cseq)
        tr.started(ev)
        ev.t0 = time.perf_counter()
        return ev

    def _end(self, ev):
        ev.t1 = time.perf_counter()
        self.tracer.finished(ev)

    def _key(self, counts, src, dst, tag):
        k = (src, dst, tag)
        n = counts.get(k, 0)
        counts[k] = n + 1
        return (self.name, src, dst, tag, n)

    # ---- the one place that waits --------------------------------------------------
    def _blocking(self, name, args, ev):
        """MPI's blocking ``name(*args)``; with a timeout, its ``I`` form through _wait."""
        if self._timeout is None:
            return getattr(self._c, name)(*args)
        self._wait([getattr(self._c, "I" + name.lower())(*args)], ev)

    def _wait(self, reqs, ev, statuses=None):
        """Wait for requests: as MPI does, or polling with Test until the deadline."""
        Request = self._M.Request
        if self._timeout is None:
            Request.Waitall(reqs, statuses)
            return
        start = time.perf_counter()
        deadline = start + self._timeout
        nap = 1e-5
        while not Request.Testall(reqs, statuses):
            now = time.perf_counter()
            if now > deadline:
                raise self._stalled(ev)
            if now - start < SPIN_S:
                # MPI advances a collective only inside Test: call it again at once, but
                # when ranks outnumber cores first offer the core to the rank we wait for
                if self.heavy_yield:
                    os.sched_yield()
                continue
            time.sleep(nap)  # a long wait: sleep a little, growing to 1 ms
            nap = min(nap * 2, 1e-3)

    def _stalled(self, ev) -> CommTimeout:
        return watchdog.stall(ev, self.world_rank, self.name, self._timeout, self.tracer.phase,
                              self.tracer.last_lines())

    # ---- point-to-point --------------------------------------------------------------
    def _src_tag(self, source, tag):
        M = self._M
        return (M.ANY_SOURCE if source is None else source), (M.ANY_TAG if tag is None else tag)

    def send(self, buf, dest: int, tag: int = 0, note: str = "") -> None:
        """Blocking send of a contiguous NumPy array to ``dest``."""
        if not self.tracer.on:
            self._blocking("Send", (buf, dest, tag), None)
            return
        w = self._world[dest]
        ev = self._begin("p2p", "send", (w,), buf.nbytes, 0, tag, note)
        ev.skey = self._key(self._nout, self.world_rank, w, tag)
        self._blocking("Send", (buf, dest, tag), ev)
        self._end(ev)

    def recv(self, buf, source: int | None = None, tag: int | None = None, note: str = ""):
        """Blocking receive into ``buf``; None means any source / any tag.
        Returns ``(source, tag)`` of the message received."""
        src, tg = self._src_tag(source, tag)
        st = self._M.Status()
        ev = None
        if self.tracer.on:
            ev = self._begin("p2p", "recv", (None if source is None else self._world[source],), 0,
                             buf.nbytes, tg, note)
        if self._timeout is None:
            self._c.Recv(buf, src, tg, st)
        else:
            self._wait([self._c.Irecv(buf, src, tg)], ev, [st])
        if ev is not None:
            self._finish_recv(ev, st)
        return st.Get_source(), st.Get_tag()

    def _finish_recv(self, ev, st):
        w = self._world[st.Get_source()]
        ev.peers = ev.peers[:-1] + (w,)
        ev.tag, ev.recv = st.Get_tag(), st.Get_count()
        ev.rkey = self._key(self._nin, w, self.world_rank, ev.tag)
        self._end(ev)

    def sendrecv(self, sendbuf, dest: int, recvbuf, source: int | None, tag: int = 0,
                 recvtag: int | None = None, note: str = ""):
        """Send to ``dest`` and receive from ``source`` at once (no deadlock in a ring).
        ``recvtag`` defaults to ``tag``. Returns ``(source, tag)`` received."""
        src, rtg = self._src_tag(source, tag if recvtag is None else recvtag)
        st = self._M.Status()
        ev = None
        if self.tracer.on:
            w = self._world[dest]
            peers = (w, None if source is None else self._world[source])
            ev = self._begin("p2p", "sendrecv", peers, sendbuf.nbytes, recvbuf.nbytes, tag, note)
            ev.skey = self._key(self._nout, self.world_rank, w, tag)
        if self._timeout is None:
            self._c.Sendrecv(sendbuf, dest, tag, recvbuf, src, rtg, st)
        else:
            reqs = [self._c.Irecv(recvbuf, src, rtg), self._c.Isend(sendbuf, dest, tag)]
            self._wait(reqs, ev, [st, self._M.Status()])
        if ev is not None:
            self._finish_recv(ev, st)
        return st.Get_source(), st.Get_tag()

    def isend(self, buf, dest: int, tag: int = 0, note: str = "") -> Req:
        """Start a send; the event spans from here to ``wait``."""
        ev = None
        if self.tracer.on:
            w = self._world[dest]
            ev = self._begin("p2p", "isend", (w,), buf.nbytes, 0, tag, note)
            ev.skey = self._key(self._nout, self.world_rank, w, tag)
        return Req(self._c.Isend(buf, dest, tag), ev, None, False)

    def irecv(self, buf, source: int | None = None, tag: int | None = None, note: str = "") -> Req:
        """Start a receive; ``wait`` returns ``(source, tag)``."""
        src, tg = self._src_tag(source, tag)
        ev = None
        if self.tracer.on:
            ev = self._begin("p2p", "irecv", (None if source is None else self._world[source],), 0,
                             buf.nbytes, tg, note)
        return Req(self._c.Irecv(buf, src, tg), ev, self._M.Status(), True)

    def wait(self, req: Req):
        """Finish one request; ``(source, tag)`` for a receive, None for a send."""
        return self.waitall([req])[0]

    def waitall(self, reqs: list) -> list:
        """Finish several requests (in any order MPI completes them)."""
        sts = [r.status or self._M.Status() for r in reqs]
        first = next((r.ev for r in reqs if r.ev is not None), None)
        self._wait([r.raw for r in reqs], first, sts)
        return self._finished(reqs, sts)

    def testall(self, reqs: list) -> bool:
        """True, with the requests finished as ``waitall`` finishes them, when every one has
        completed; False (and nothing changed) when some has not. Never waits."""
        sts = [r.status or self._M.Status() for r in reqs]
        if not self._M.Request.Testall([r.raw for r in reqs], sts):
            return False
        self._finished(reqs, sts)
        return True

    def _finished(self, reqs, sts) -> list:
        out = []
        for r, st in zip(reqs, sts):
            if r.ev is not None:
                if r.recv:
                    self._finish_recv(r.ev, st)
                else:
                    self._end(r.ev)
            out.append((st.Get_source(), st.Get_tag()) if r.recv else None)
        return out

    def drain(self, grace: float = 0.05) -> list[tuple[int, int, int]]:
        """Receive and count every message still waiting for this rank on this communicator
        (sent, but never received): ``[(source world rank, tag, bytes)]``. Polls for
        ``grace`` seconds, so that messages still on their way arrive too. Not traced."""
        if self.backend != "mpi":
            return []
        M, out, st = self._M, [], self._M.Status()
        deadline = time.perf_counter() + grace
        while time.perf_counter() < deadline:
            if not self._c.Iprobe(M.ANY_SOURCE, M.ANY_TAG, st):
                time.sleep(0.002)
                continue
            n = st.Get_count(M.BYTE)
            buf = np.empty(max(n, 1), np.uint8)
            self._c.Recv([buf, n, M.BYTE], st.Get_source(), st.Get_tag())
            out.append((self._world[st.Get_source()], st.Get_tag(), n))
        return out

    # ---- staging device buffers through the host --------------------------------------
    def staged(self, op: str, nbytes: int, note: str = ""):
        """``with comm.staged("d2h", n):`` around a copy between a GPU and the host made for
        a message ("d2h": device to host before sending, "h2d": back after receiving): an
        event of kind "copy" on the communication track. No bytes cross ranks in it."""
        if not self.tracer.on:
            return NOOP
        return CopySpan(self, "copy", op, nbytes, note)

    # ---- hand-written collectives: entry point and desync guard -----------------------
    def collective(self, op: str, algo: str, buf, root: int = -1):
        """``with comm.collective("allreduce", "ring", buf):`` around a hand-written
        collective: counts it, checks the fingerprint, and spans its messages."""
        self._cseq += 1
        if self.check_collectives:
            self._check(op, algo, buf.size, buf.dtype, root)
        if not self.tracer.on:
            return NOOP
        return CollSpan(self, op, algo, buf.nbytes, root)

    def _check(self, op, algo, count, dtype, root):
        mine = watchdog.fingerprint(self._cseq, op, algo, count, dtype, root)
        every = np.empty((self.size, mine.size), np.int64)
        ev = None
        if self.tracer.on:
            ev = self._begin("check", "check", (), mine.nbytes, every.nbytes, -1, f"{op}/{algo}",
                             "mpi", self._cseq)
        self._blocking("Allgather", (mine, every), ev)
        if ev is not None:
            self._end(ev)
        err = watchdog.mismatch(every, self.name)
        if err is not None:
            raise err

    # ---- the end-of-run report ---------------------------------------------------------
    def report(self, chrome=None, png=None, table: bool = True, stream=None, root: int = 0,
               steps: tuple[int, int] | None = None):
        """Gather every rank's events to ``root``; there print the table and write the Chrome
        trace and PNG timeline (when paths are given). Returns the table's rows on ``root``.
        ``steps=(first, last)`` keeps only those training steps in the two files."""
        tr = self.tracer
        saved = tr.enabled, tr.show
        tr.set(enabled=False, show=False)  # the report's own traffic is not part of the run
        try:
            gathered = self.gather_obj(tr.export(), root)
        finally:
            tr.set(*saved)
        if self.rank != root:
            return None
        ranks = T.load(gathered)
        rows = T.summarize(ranks)
        if table:
            print(T.format_table(rows), file=stream or sys.stdout, flush=True)
        if steps is not None:
            ranks = T.window(ranks, *steps)
        if chrome:
            T.write_chrome(chrome, ranks)
        if png:
            write_png(png, ranks)
        return rows
