"""Event records of every communication call, and what is made of them after a run.

``comm.py`` writes one :class:`Event` per call (send, recv, an MPI collective, a hand-written
collective as a span around its messages); the training loop adds compute spans with
``with tracer.compute("forward"):``. The same records feed three views:

- the live log (``show``): one ``[rN]`` line per message, printed as the call starts, so a
  hang leaves its last message on screen;
- the end-of-run table (:func:`summarize`, :func:`format_table`), gathered to rank 0;
- the Chrome trace (:func:`chrome_trace`, one process per rank, a compute track and a
  communication track, flow arrows from each send to its receive) and the PNG timeline
  (``timeline.py``).

Cost: when nothing is on, ``comm.py`` pays one ``if tracer.on`` per call and
``tracer.compute`` returns a shared do-nothing context. When on, a call costs one small
object, two clock reads and a few dictionary updates: about 3 us of Python per call on the
2-vCPU development machine, against ~10-15 us for the message itself.

Times are ``time.perf_counter()`` seconds; each rank's ``origin`` is taken right after a
barrier, so ``t - origin`` lines the ranks up to within a barrier's skew (tens of us).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from contextlib import nullcontext
from minipar.core.units import format_bytes

__all__ = ["Event", "Tracer", "summarize", "format_table", "match_messages",
           "chrome_trace", "write_chrome"]

COMM_KINDS = ("p2p", "mpi", "coll", "check", "copy")  # kinds on the communication track
# "copy": a buffer staged between a GPU and the host for a message (op "d2h" or "h2d")
SENDS = ("send", "isend", "sendrecv")
RECVS = ("recv", "irecv", "sendrecv")

_NULL = nullcontext()


class Event:
    """One call: who, what, with whom, how many bytes, when, and where in training.

    ``kind`` is ``p2p`` (send/recv/sendrecv/isend/irecv), ``mpi`` (one of MPI's own
    collectives), ``coll`` (a hand-written collective: a span around its messages),
    ``check`` (the desync fingerprint exchange) or ``compute``. ``peers`` are world ranks.
    ``seq`` counts the calls on this communicator, ``cseq`` its collectives (the same number
    on every member, which is how rank 0 lines collectives up across ranks). ``skey`` and
    ``rkey`` name the message sent and received: ``(comm, src, dst, tag, n)`` with ``n`` the
    count of earlier messages on that channel, so MPI's in-order matching makes the send's
    ``skey`` equal the receive's ``rkey``.
    """

    __slots__ = ("rank", "comm", "seq", "cseq", "kind", "op", "algo", "coll", "peers", "sent",
                 "recv", "tag", "step", "phase", "note", "depth", "t0", "t1", "skey", "rkey")

    def __init__(self, rank, comm, kind, op, algo="", coll="", peers=(), sent=0, recv=0,
                 tag=-1, step=None, phase=None, note="", depth=0, seq=0, cseq=None):
        self.rank, self.comm, self.kind, self.op = rank, comm, kind, op
        self.algo, self.coll, self.peers, self.sent, self.recv = algo, coll, peers, sent, recv
        self.tag, self.step, self.phase, self.note = tag, step, phase, note
        self.depth, self.seq, self.cseq = depth, seq, cseq
        self.t0 = self.t1 = 0.0
        self.skey = self.rkey = None

    def astuple(self) -> tuple:
        return tuple(getattr(self, s) for s in self.__slots__)

    @classmethod
    def fromtuple(cls, values) -> Event:
        ev = cls.__new__(cls)
        for s, v in zip(cls.__slots__, values):
            setattr(ev, s, v)
        return ev

    def line(self) -> str:
        """The ``--show-comm`` line, e.g. ``[r1] step 3 ring allreduce 2/6 reduce-scatter
        send 64.0 KiB -> r2``."""
        parts = [f"[r{self.rank}]"]
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.phase:
            parts.append(f"({self.phase})")
        if self.kind == "p2p":
            if self.coll:
                parts += [self.algo, self.coll]
            if self.note:
                parts.append(self.note)
            if self.op in SENDS:
                parts.append(f"send {format_bytes(self.sent)} -> r{self.peers[0]}")
            if self.op == "sendrecv":
                parts[-1] += ","
            if self.op in RECVS:
                src = self.peers[-1]  # None: any source, not known until it arrives
                who = "any" if src is None else f"r{src}"
                parts.append(f"recv {format_bytes(self.recv)} <- {who}")
            if not self.coll:
                parts.append(f"tag {self.tag}")
        elif self.kind == "check":
            parts.append(f"check {self.note} #{self.cseq}")
        else:
            parts += [self.algo, self.op, format_bytes(max(self.sent, self.recv))]
            if self.note:
                parts.append(self.note)
        if self.comm != "world":
            parts.append(f"on {self.comm}")
        return " ".join(parts)


class _ComputeSpan:
    __slots__ = ("tracer", "ev")

    def __init__(self, tracer, name):
        self.tracer = tracer
        self.ev = Event(tracer.rank, "", "compute", name, step=tracer.step, phase=tracer.phase,
                        depth=tracer._compute_depth)

    def __enter__(self):
        self.tracer._compute_depth += 1
        self.ev.t0 = time.perf_counter()
        return self.ev

    def __exit__(self, *exc):
        self.ev.t1 = time.perf_counter()
        self.tracer._compute_depth -= 1
        self.tracer.events.append(self.ev)
        return False


class Tracer:
    """Where one rank's events go. Shared by a communicator and the ones split from it.

    ``enabled`` keeps every event for the trace and the table; ``show`` prints each message
    as it starts; ``watch`` (set by a communication timeout) keeps only the last ``keep``
    events, for the stall message. ``on`` is true when any of the three is, and is the one
    flag ``comm.py`` tests per call.
    """

    def __init__(self, rank: int = 0, enabled: bool = False, show: bool = False,
                 stream=None, keep: int = 8):
        self.rank = rank
        self.enabled, self.show, self.watch = bool(enabled), bool(show), False
        self.stream = stream
        self.events: list = []
        self.recent: deque = deque(maxlen=keep)
        self.step = None
        self.phase = None
        self.origin = time.perf_counter()
        self._compute_depth = 0
        self._refresh()

    def _refresh(self):
        self.on = self.enabled or self.show or self.watch

    def set(self, enabled=None, show=None, watch=None) -> None:
        """Switch recording, the live log or the stall history on or off."""
        if enabled is not None:
            self.enabled = bool(enabled)
        if show is not None:
            self.show = bool(show)
        if watch is not None:
            self.watch = bool(watch)
        self._refresh()

    def compute(self, name: str):
        """``with tracer.compute("forward"):`` a span on this rank's compute track."""
        if not self.enabled:
            return _NULL
        return _ComputeSpan(self, name)

    def started(self, ev: Event) -> None:
        """Called by comm.py as a call begins: the live line (flushed, so lines appear
        in order while the program runs)."""
        if self.show:
            stream = self.stream or sys.stdout
            stream.write(ev.line() + "\n")
            stream.flush()

    def finished(self, ev: Event) -> None:
        self.recent.append(ev)
        if self.enabled:
            self.events.append(ev)

    def last_lines(self) -> list[str]:
        """The last few calls, newest last, with their times relative to ``origin``."""
        o = self.origin
        return [f"{ev.line()}  [{(ev.t0 - o) * 1e3:.3f}..{(ev.t1 - o) * 1e3:.3f} ms]"
                for ev in self.recent]

    def export(self) -> tuple:
        """What one rank sends to rank 0 for the report: ``(origin, [event tuples])``."""
        return self.origin, [ev.astuple() for ev in self.events]


def load(gathered) -> list:
    """``[(origin, [tuples])]`` per rank (from :meth:`Tracer.export`) -> ``[(origin, [Event])]``."""
    return [(origin, [Event.fromtuple(t) for t in evs]) for origin, evs in gathered]


def window(ranks, first: int, last: int) -> list:
    """Only the events of training steps first..last, timed from the earliest of them."""
    kept = [(origin, [ev for ev in evs if isinstance(ev.step, int) and first <= ev.step <= last])
            for origin, evs in ranks]
    start = min((ev.t0 - origin for origin, evs in kept for ev in evs), default=0.0)
    return [(origin + start, evs) for origin, evs in kept]


def match_messages(ranks) -> list:
    """Pairs ``(send_event, recv_event)`` whose keys match (see :class:`Event`)."""
    sends = {}
    for _, evs in ranks:
        for ev in evs:
            if ev.skey is not None:
                sends[ev.skey] = ev
    return [(sends[ev.rkey], ev) for _, evs in ranks for ev in evs
            if ev.rkey is not None and ev.rkey in sends]


def _union(intervals) -> float:
    """Total length covered by possibly overlapping intervals (isend/irecv overlap compute)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def summarize(ranks) -> list[dict]:
    """One row per rank: messages and bytes, time in communication and computation, waiting.

    ``comm_s`` covers the top-level communication calls (a hand-written collective counts
    once, with the additions it does between messages). ``wait_s`` is time spent waiting for
    other ranks to arrive: for each collective, ``max over members of start - own start``
    (clipped to the call's length); for each top-level receive, ``send start - receive
    start``. Bytes of MPI's own collectives are the buffers handed to MPI, not its wire traffic.
    """
    arrivals = {}
    for _, evs in ranks:
        for ev in evs:
            if ev.depth == 0 and ev.kind in ("mpi", "coll"):
                key = (ev.comm, ev.cseq)
                arrivals[key] = max(arrivals.get(key, ev.t0), ev.t0)
    late_send = {r.rkey: s.t0 for s, r in match_messages(ranks)}
    rows = []
    for rank, (origin, evs) in enumerate(ranks):
        row = dict(rank=rank, msgs_sent=0, msgs_recv=0, mpi_colls=0, bytes_sent=0,
                   bytes_recv=0, comm_s=0.0, compute_s=0.0, wait_s=0.0, wall_s=0.0)
        comm_iv, comp_iv = [], []
        for ev in evs:
            if ev.kind == "compute":
                if ev.depth == 0:
                    comp_iv.append((ev.t0, ev.t1))
                continue
            if ev.kind == "p2p":
                row["msgs_sent"] += ev.op in SENDS
                row["msgs_recv"] += ev.op in RECVS
            elif ev.kind in ("mpi", "check"):
                row["mpi_colls"] += 1
            if ev.kind not in ("coll", "copy"):  # copies stay on this rank
                row["bytes_sent"] += ev.sent
                row["bytes_recv"] += ev.recv
            if ev.depth:
                continue
            comm_iv.append((ev.t0, ev.t1))
            dur = ev.t1 - ev.t0
            if ev.kind in ("mpi", "coll"):
                row["wait_s"] += min(max(arrivals[(ev.comm, ev.cseq)] - ev.t0, 0.0), dur)
            elif ev.rkey in late_send:
                row["wait_s"] += min(max(late_send[ev.rkey] - ev.t0, 0.0), dur)
        row["comm_s"], row["compute_s"] = _union(comm_iv), _union(comp_iv)
        if evs:
            row["wall_s"] = max(ev.t1 for ev in evs) - origin
        rows.append(row)
    return rows


def format_table(rows) -> str:
    """The end-of-run table, one line per rank and a total."""
    head = (f"{'rank':>4} {'sent':>6} {'recv':>6} {'colls':>6} {'bytes out':>11} {'bytes in':>11}"
            f" {'comm s':>8} {'compute s':>9} {'wait s':>8} {'wall s':>8}")
    lines = ["communication per rank (msgs = point-to-point messages, colls = MPI's own calls)",
             head]
    tot = dict.fromkeys(rows[0] if rows else (), 0)
    for row in rows:
        for k, v in row.items():
            tot[k] = max(tot[k], v) if k == "wall_s" else tot[k] + v
        lines.append(_row(row, f"{row['rank']:>4}"))
    if len(rows) > 1:
        lines.append(_row(tot, f"{'all':>4}"))
    return "\n".join(lines)


def _row(r, label) -> str:
    return (f"{label} {r['msgs_sent']:>6} {r['msgs_recv']:>6} {r['mpi_colls']:>6}"
            f" {format_bytes(r['bytes_sent']):>11} {format_bytes(r['bytes_recv']):>11}"
            f" {r['comm_s']:>8.3f} {r['compute_s']:>9.3f} {r['wait_s']:>8.3f} {r['wall_s']:>8.3f}")


def chrome_trace(ranks) -> dict:
    """The Chrome trace-event JSON object (open in https://ui.perfetto.dev or chrome://tracing).

    One process per rank (pid = rank), thread 0 = compute, thread 1 = communication;
    complete events ("X") nest a hand-written collective's messages under its span; a flow
    ("s" at the send, "f" at the receive) draws an arrow for each matched message.
    """
    out = []
    for rank, (origin, evs) in enumerate(ranks):
        meta = dict(ph="M", pid=rank, tid=0)
        out.append(dict(meta, name="process_name", args={"name": f"rank {rank}"}))
        out.append(dict(meta, name="process_sort_index", args={"sort_index": rank}))
        for tid, name in ((0, "compute"), (1, "communication")):
            out.append(dict(ph="M", name="thread_name", pid=rank, tid=tid, args={"name": name}))
        for ev in evs:
            ts, dur = (ev.t0 - origin) * 1e6, max((ev.t1 - ev.t0) * 1e6, 0.001)
            name = ev.op if ev.kind in ("p2p", "compute") else f"{ev.algo} {ev.op}"
            args = dict(step=ev.step, phase=ev.phase)
            if ev.kind != "compute":
                args.update(comm=ev.comm, seq=ev.seq, peers=list(ev.peers), bytes_sent=ev.sent,
                            bytes_recv=ev.recv, tag=ev.tag, note=ev.note, cseq=ev.cseq)
            out.append(dict(ph="X", name=name, cat=ev.kind, pid=rank, tid=int(ev.kind != "compute"),
                            ts=ts, dur=dur, args=args))
    origins = [origin for origin, _ in ranks]
    for i, (s, r) in enumerate(match_messages(ranks)):
        # From just after the send starts to just before the receive ends: inside both
        # slices (so the arrow binds to them) and forward in time.
        ts_s = (s.t0 + 0.05 * (s.t1 - s.t0) - origins[s.rank]) * 1e6
        ts_r = (r.t1 - 0.05 * (r.t1 - r.t0) - origins[r.rank]) * 1e6
        common = dict(name="message", cat="msg", id=i + 1)
        out.append(dict(ph="s", pid=s.rank, tid=1, ts=ts_s, **common))
        out.append(dict(ph="f", bp="e", pid=r.rank, tid=1, ts=ts_r, **common))
    return {"traceEvents": out, "displayTimeUnit": "ms"}


def write_chrome(path, ranks) -> None:
    """Write the trace whole or not at all (a temporary file renamed into place)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(chrome_trace(ranks), f)
    os.replace(tmp, path)
