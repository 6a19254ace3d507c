"""The two guards against a silent hang: the stall watchdog and the collective desync check.

Both live in ``comm.py``'s calls; this file holds what they raise and how they explain it.

- :class:`CommTimeout` is raised by the one place that waits (``Comm._wait``) when a call
  outlives ``comm.set_timeout(seconds)``. Its message names this rank, the call, its
  peer(s), tag, step and phase, and lists this rank's last calls, so the rank everyone is
  waiting for can be read off the ranks that did not time out.
- :class:`CollectiveMismatch` is raised on every member when ``check_collectives`` is on and
  the fingerprints of a collective disagree: ranks are about to enter different collectives
  (or the same one with different lengths, dtypes or roots) and MPI would hang or
  silently mix buffers.

A fingerprint is six int64: collective sequence number on the communicator, op, algorithm,
element count (-1 where ranks may legitimately differ, as in ``gatherv``), dtype, root
(-1 for none). Names are sent as CRC-32 codes and decoded through a table of known names.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["CommTimeout", "CollectiveMismatch", "fingerprint", "mismatch", "stall"]

_NAMES: dict = {}


class CommTimeout(RuntimeError):
    """A communication call did not finish before the deadline (a stall or a dead peer)."""

    def __init__(self, message, rank, op, peer, tag, step, recent):
        super().__init__(message)
        self.rank, self.op, self.peer, self.tag, self.step = rank, op, peer, tag, step
        self.recent = recent  # this rank's last calls, oldest first, as text lines


class CollectiveMismatch(RuntimeError):
    """Ranks entered different collectives (or the same one with different arguments)."""

    def __init__(self, message, calls):
        super().__init__(message)
        self.calls = calls  # {description of a call: [ranks that made it]}


def _code(name) -> int:
    code = zlib.crc32(str(name).encode()) & 0x7FFFFFFF
    _NAMES[code] = str(name)
    return code


for _n in ("allreduce bcast reduce allgather allgatherv reduce_scatter alltoall alltoallv gather "
           "gatherv scatter barrier broadcast mpi naive tree rd ring pairwise float16 float32 "
           "float64 int32 int64 uint8 none").split():
    _code(_n)


def fingerprint(cseq, op, algo, count, dtype, root) -> np.ndarray:
    dt = "none" if dtype is None else np.dtype(dtype).name
    return np.array([cseq, _code(op), _code(algo), count, _code(dt), root], np.int64)


def mismatch(every: np.ndarray, comm_name: str) -> CollectiveMismatch | None:
    """None if all rows of ``every`` (one fingerprint per rank) agree, else the error."""
    if (every == every[0]).all():
        return None
    calls: dict = {}
    for r, (seq, o, a, n, d, root) in enumerate(every.tolist()):
        where = f", root {root}" if root >= 0 else ""
        desc = (f"{_NAMES.get(o, hex(o))}({_NAMES.get(a, hex(a))}, n={n}, "
                f"{_NAMES.get(d, hex(d))}{where}) as collective #{seq}")
        calls.setdefault(desc, []).append(r)
    text = "; ".join(f"{','.join(f'r{r}' for r in rs)} called {d}" for d, rs in calls.items())
    return CollectiveMismatch(f"collective mismatch on {comm_name}: {text}", calls)


def stall(ev, rank, comm_name, timeout, phase, recent) -> CommTimeout:
    """The watchdog's error for the call described by event ``ev`` (None if untraced)."""
    op, peers, tag, step = (ev.op, ev.peers, ev.tag, ev.step) if ev else ("call", (), -1, None)
    what = op
    if ev is not None and ev.kind in ("mpi", "coll", "check"):
        what = f"{ev.algo} {ev.op}"
    elif ev is not None and ev.coll:
        what = f"{op} inside {ev.algo} {ev.coll} ({ev.note})"
    who = ",".join("any" if p is None else f"r{p}" for p in peers) or "all ranks"
    msg = (f"rank {rank}: {what} with {who} on {comm_name} (tag {tag}, step {step}, phase {phase}) "
           f"did not finish within {timeout} s; last calls on this rank, oldest first:\n  "
           + "\n  ".join(recent or ["(none)"]))
    return CommTimeout(msg, rank, op, peers, tag, step, recent)
