"""The spans a communicator opens around calls: a phase, a hand-written collective, a
staging copy (and the no-op one when tracing is off)."""

from __future__ import annotations


class Noop:
    __slots__ = ()

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False

    def resume(self):
        pass

    pause = close = resume


NOOP = Noop()


class Phase:
    __slots__ = ("tracer", "name", "old")

    def __init__(self, tracer, name):
        self.tracer, self.name = tracer, name

    def __enter__(self):
        self.old, self.tracer.phase = self.tracer.phase, self.name

    def __exit__(self, *exc):
        self.tracer.phase = self.old
        return False


class CollSpan:
    """The span of a hand-written collective: its messages nest under it and print its name."""
    __slots__ = ("comm", "ev", "ctx")

    def __init__(self, comm, op, algo, nbytes, root):
        self.comm, self.ctx = comm, (algo, op)
        note = f"root r{comm._world[root]}" if root >= 0 else f"{comm.size} ranks"
        self.ev = comm._begin("coll", op, (), nbytes, nbytes, -1, note, algo, comm._cseq)

    def __enter__(self):
        self.comm._ctx.append(self.ctx)
        return self.ev

    def __exit__(self, *exc):
        self.comm._ctx.pop()
        self.comm._end(self.ev)
        return False

    # a collective in flight (comm/inflight.py): its messages nest under it while a step
    # is posted; the span ends when its last step is done
    def resume(self):
        self.comm._ctx.append(self.ctx)

    def pause(self):
        self.comm._ctx.pop()

    def close(self):
        self.comm._end(self.ev)


class CopySpan:
    """A span on the communication track that is not a message (a staging copy)."""
    __slots__ = ("comm", "ev")

    def __init__(self, comm, kind, op, nbytes, note):
        self.comm = comm
        sent, recv = (nbytes, 0) if op == "d2h" else (0, nbytes)
        self.ev = comm._begin(kind, op, (), sent, recv, -1, note, "stage")

    def __enter__(self):
        return self.ev

    def __exit__(self, *exc):
        self.comm._end(self.ev)
        return False
