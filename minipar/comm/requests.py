"""A pending non-blocking call: the MPI request and its trace event."""


class Req:
    """A pending ``isend``/``irecv``; finish it with ``comm.wait(req)``."""
    __slots__ = ("raw", "ev", "status", "recv")

    def __init__(self, raw, ev, status, recv):
        self.raw, self.ev, self.status, self.recv = raw, ev, status, recv
