"""A collective as a list of steps, run to the end at once or moved on a little at a time.

Each hand-written collective of ``collectives.py`` is written once, as a generator: it
yields a :class:`Step` (the messages of one round: a send, a receive, or both) and, when
resumed, does the local work that round made possible (adding a received chunk) before it
yields the next. Two drivers run the same generator:

    run(comm, steps)           blocking: each step with comm.send / recv / sendrecv
    InFlight(comm, ..., steps) non-blocking: each step posted with isend / irecv;
                               poll() tests them and moves on while their messages have
                               arrived, never waiting; wait() finishes the rest

so a gradient bucket's ring allreduce can start in the middle of the backward pass and be
moved on between the layers' backward steps (``autograd.pollers``). The messages, tags, and
additions are the same in both, in the same order: the result is the same bits.

Only one collective may be in flight per communicator at a time, and collectives must be
started in the same order on every rank (``training.sync`` queues the buckets): two rounds
of two collectives use the same tags, and MPI matches messages of one sender and tag in the
order they are posted.
"""

from __future__ import annotations


class Step:
    """One round of a collective: send ``send`` to ``dest`` and/or receive into ``recv`` from
    ``src``, both with ``tag``."""
    __slots__ = ("send", "dest", "recv", "src", "tag", "note")

    def __init__(self, send=None, dest=-1, recv=None, src=-1, tag=0, note=""):
        self.send, self.dest, self.recv, self.src = send, dest, recv, src
        self.tag, self.note = tag, note

    def blocking(self, comm) -> None:
        if self.send is not None and self.recv is not None:
            comm.sendrecv(self.send, self.dest, self.recv, self.src, self.tag, note=self.note)
        elif self.send is not None:
            comm.send(self.send, self.dest, self.tag, note=self.note)
        else:
            comm.recv(self.recv, self.src, self.tag, note=self.note)

    def start(self, comm) -> list:
        """Post the round's messages (the receive first); the requests to finish."""
        reqs = []
        if self.recv is not None:
            reqs.append(comm.irecv(self.recv, self.src, self.tag, note=self.note))
        if self.send is not None:
            reqs.append(comm.isend(self.send, self.dest, self.tag, note=self.note))
        return reqs


def send(buf, dest, tag, note="") -> Step:
    return Step(send=buf, dest=dest, tag=tag, note=note)


def recv(buf, src, tag, note="") -> Step:
    return Step(recv=buf, src=src, tag=tag, note=note)


def sendrecv(sendbuf, dest, recvbuf, src, tag, note="") -> Step:
    return Step(sendbuf, dest, recvbuf, src, tag, note)


def run(comm, steps) -> None:
    """Blocking: every step in turn, each finished before the next."""
    for step in steps:
        step.blocking(comm)


class InFlight:
    """A collective started without waiting. ``poll()`` returns True once it has finished;
    ``wait()`` finishes it. The span (``comm.collective``) is opened at the start, so the
    fingerprint check and the trace see it where it began, and closed when the last step
    is done; each step's messages nest under it."""

    def __init__(self, comm, op: str, algo: str, buf, steps):
        self.comm, self.steps = comm, steps
        self.span = comm.collective(op, algo, buf)
        self.reqs: list = []
        self.done = False
        self._advance()

    def _advance(self) -> None:
        """The local work after the last round, then post the next round (or close)."""
        self.span.resume()
        try:
            step = next(self.steps, None)
            if step is not None:
                self.reqs = step.start(self.comm)
        finally:
            self.span.pause()
        if step is None:
            self.done, self.reqs = True, []
            self.span.close()

    def poll(self) -> bool:
        while not self.done and self.comm.testall(self.reqs):
            self._advance()
        return self.done

    def wait(self) -> None:
        while not self.done:
            self.comm.waitall(self.reqs)
            self._advance()
