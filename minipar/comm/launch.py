"""How a minipar program starts and ends on every rank, including when something goes wrong.

- A user mistake (``UserError``: bad flag, bad file, impossible size) is found before
  training by every rank, agreed on with one small collective (``agree``), and reported once,
  by rank 0, as ``minipar: error: ...`` on stderr; every rank exits with status 2. A
  ``UserError`` raised outside ``agree`` is checked with a ``census`` (up to 2 s): if every
  rank raised one, it is reported the same way; if some rank did not, the job is aborted,
  since that rank would otherwise wait for the others forever.
- A fault on one rank (any other exception) is reported by that rank as one line naming
  the rank, the error and where it happened, and the whole job is ended with MPI_Abort, so
  no other rank waits forever. ``--debug`` adds the traceback.
- A stall (``CommTimeout`` from the watchdog): before the abort, the ranks that timed out
  swap one line each about what they wait for (``census``, a few seconds at most), and
  the lowest of them prints who waits where, naming the ranks that never arrived.
- An error every rank raised at once (``CollectiveMismatch``, ``ReplicaDrift``) is printed
  by rank 0 only, then the job is aborted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import traceback

import numpy as np

from minipar.comm.communicator import Comm, init
from minipar.core import threads
from minipar.core.launcher import launcher_rank
from minipar.core.errors import UserError, where

COMM_PACKAGE = os.path.dirname(os.path.abspath(__file__))  # minipar/comm

EXIT_USER, EXIT_FAULT = 2, 1
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that went away
ABORT_DELAY = 0.5  # seconds; without it mpiexec dropped the last line in ~1 of 24 aborts
TAG_CENSUS = 31000  # above every tag of minipar.comm.collectives (20000..26999)
_EVERYWHERE = ("CollectiveMismatch", "ReplicaDrift")  # raised on every rank at once
_STALL = re.compile(r"^rank \d+: (?P<what>.*?) with (?P<who>.*?) on .*\(tag .*?, "
                    r"step (?P<step>\S+), phase (?P<phase>\S+)\) did not finish")


def find_mpiexec() -> str:
    """The ``mpiexec`` beside this Python (the ``mpich`` wheel puts it there), else the first
    one on PATH; a UserError saying how to get one when there is none."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.path.exists(here) else shutil.which("mpiexec")
    if not found:
        raise UserError("mpiexec not found: pip install mpich (or install an MPI)")
    return found


def say_error(message: str) -> None:
    print(f"minipar: error: {message}", file=sys.stderr, flush=True)


def agree(comm, fn, *args, **kwargs):
    """Run ``fn`` on every rank; if it raised a UserError anywhere, raise the first such error
    (lowest rank) on every rank, so all ranks stop together with the same message."""
    err = None
    try:
        result = fn(*args, **kwargs)
    except UserError as exc:
        err, result = exc, None
    if comm.size > 1:
        with comm.phase(comm.tracer.phase or "agree on errors"):  # the caller's label first
            messages = comm.allgather_obj(None if err is None else
                                          (type(err).__name__, str(err)))
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if failed and err is None:
            rank, (_, text) = failed[0]
            err = UserError(text if rank == 0 else f"{text} (on rank {rank})")
    if err is not None:
        err.agreed = True  # every rank raises it: no abort needed
        raise err
    return result


def fault_where(exc: BaseException) -> str:
    """``file.py:123 in function`` of the innermost frame; for errors of the communicator
    itself, the innermost frame outside the ``minipar.comm`` package (the caller)."""
    if type(exc).__name__ in ("CommTimeout", "CollectiveMismatch"):
        return where(exc, skip=(COMM_PACKAGE,))
    return where(exc)


def _wait_status(exc) -> dict:
    """What a CommTimeout says this rank waits for, as a small dict."""
    m = _STALL.match(str(exc).splitlines()[0])
    if m is None:
        return {"what": str(getattr(exc, "op", "?")), "who": "?", "step": "?", "phase": "?"}
    return m.groupdict()


def census(comm, payload: dict, grace: float, tag: int = TAG_CENSUS) -> tuple[dict, list]:
    """Swap one small JSON object with every other rank that calls this, for ``grace`` s.

    Each caller sends ``payload`` to every other rank (a fixed 512-byte buffer, sent eagerly
    and never waited on) and listens for theirs. Ranks that call it within ``grace`` of each
    other hear each other; a rank that is dead, or busy outside this call, stays silent.
    Point-to-point on its own tag, so it works while collectives hang. Returns
    ({rank: payload}, silent ranks)."""
    me = comm.rank
    mine = np.zeros(512, np.uint8)
    text = json.dumps(payload).encode()[:512]
    mine[:len(text)] = np.frombuffer(text, np.uint8)
    bufs = {r: np.zeros(512, np.uint8) for r in range(comm.size) if r != me}
    comm.set_timeout(None)
    recvs = {r: comm.irecv(b, r, tag, note="census") for r, b in bufs.items()}
    for r in bufs:
        comm.isend(mine, r, tag, note="census")
    heard, silent = {me: payload}, []
    deadline = time.perf_counter() + grace
    for r, req in recvs.items():
        try:
            comm.set_timeout(max(deadline - time.perf_counter(), 1e-3))
            comm.wait(req)
            heard[r] = json.loads(bytes(bufs[r]).rstrip(b"\0").decode())
        except Exception:  # no answer in time, or garbled: count it as silent
            silent.append(r)
    return heard, silent


def describe_stall(heard: dict, silent: list, grace: float) -> str:
    """One line: the largest group of ranks waiting in the same call, the ranks elsewhere
    (they never arrived at that call) and the silent ones."""
    groups: dict = {}
    for r, s in sorted(heard.items()):
        groups.setdefault((s["what"], s["step"], s["phase"]), []).append(r)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    (what, step, phase), main = ranked[0]
    parts = [f"{_ranks(main)} wait in {what} (step {step}, {phase})"]
    for (w, st, ph), rs in ranked[1:]:
        who = {heard[r]['who'] for r in rs}
        parts.append(f"{_ranks(rs)} never arrived there: wait{'s' * (len(rs) == 1)} in {w} "
                     f"with {', '.join(sorted(who))} (step {st}, {ph})")
    if silent:
        parts.append(f"{_ranks(silent)} did not answer within {grace:g} s (dead, or busy "
                     f"outside communication)")
    return "minipar: stall: " + "; ".join(parts)


def _ranks(rs) -> str:
    return ",".join(f"r{r}" for r in rs)


def _report_fault(exc, rank: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    text = str(exc)
    first, rest = (text.splitlines() or [""])[0], text.splitlines()[1:]
    first = first.removeprefix(f"rank {rank}: ")  # the prefix already names the rank
    print(f"minipar: rank {rank}: {type(exc).__name__}: {first} (at {fault_where(exc)})"
          + ("\n" + "\n".join(rest) if rest else ""), file=sys.stderr, flush=True)


def end_with_fault(exc, comm, rank: int, debug: bool, timeout: float | None = None) -> int:
    """Report a fault as described in the module docstring and end every rank. The census
    listens for ``grace = clamp(timeout / 10, 1 s, 5 s)``."""
    multi = comm is not None and comm.size > 1
    name = type(exc).__name__
    if multi and name == "CommTimeout":
        grace = min(5.0, max(1.0, (timeout or 10.0) / 10))
        heard, silent = census(comm, _wait_status(exc), grace)
        if min(heard) != rank:  # a lower rank that stalled too prints the report
            time.sleep(grace + 5.0)  # normally its abort ends this process first
        _report_fault(exc, rank, debug)
        print(describe_stall(heard, silent, grace), file=sys.stderr, flush=True)
    elif multi and name in _EVERYWHERE and rank != 0:
        time.sleep(5.0)  # rank 0 prints the same error and aborts the job first
        _report_fault(exc, rank, debug)
    elif isinstance(exc, UserError):
        heard, silent = census(comm, {"error": str(exc)}, 2.0) if multi else ({}, [])
        if not silent:  # every rank raised one: as if agreed, no abort needed
            if rank == 0:
                if debug:
                    traceback.print_exc()
                say_error(str(exc))
            if multi:  # the others exit once rank 0 has printed: mpiexec ends the job at
                try:  # the first non-zero exit, which could cut rank 0 short
                    comm.barrier()
                except Exception:  # noqa: BLE001 - leaving anyway
                    pass
            return EXIT_USER
        if debug:
            traceback.print_exc()
        say_error(f"{exc} (on rank {rank})")
    else:
        _report_fault(exc, rank, debug)
    if multi:
        sys.stderr.flush()
        time.sleep(ABORT_DELAY)  # let mpiexec forward our line before it kills the job
        comm.abort(EXIT_USER if isinstance(exc, UserError) else EXIT_FAULT)
    return EXIT_USER if isinstance(exc, UserError) else EXIT_FAULT


def run(main, argv=None, debug_flag: str = "--debug") -> int:
    """Call ``main(argv, state)``, turning every failure into one line and an exit status.

    ``state`` is a dict main fills in as it goes (``comm`` once it has one, ``timeout``: the
    watchdog's seconds), so a fault can end the whole job."""
    argv = sys.argv[1:] if argv is None else argv
    debug = debug_flag in argv
    state: dict = {}
    try:
        return main(argv, state) or 0
    except SystemExit:
        raise
    except UserError as exc:
        comm = state.get("comm")
        if comm is not None and comm.size > 1 and not getattr(exc, "agreed", False):
            return end_with_fault(exc, comm, comm.rank, debug, state.get("timeout"))
        if launcher_rank() == 0:
            if debug:
                traceback.print_exc()
            say_error(str(exc))
        return EXIT_USER
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as Unix tools do
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        except (OSError, ValueError):  # a stdout without a file (a notebook's): nothing to do
            pass
        comm = state.get("comm")
        if comm is not None and comm.size > 1:
            comm.abort(EXIT_PIPE)  # the other ranks would wait for this one forever
        return EXIT_PIPE
    except KeyboardInterrupt:
        comm = state.get("comm")
        if launcher_rank() == 0:
            say_error("interrupted")
        if comm is not None and comm.size > 1:
            time.sleep(ABORT_DELAY)
            comm.abort(130)  # a second Ctrl-C: some rank may be stuck, end them all
        return 130
    except BaseException as exc:  # a fault: end every rank, not just this one
        comm = state.get("comm")
        rank = comm.rank if comm is not None else launcher_rank()
        return end_with_fault(exc, comm, rank, debug, state.get("timeout"))


def start(state: dict, trace: bool = True, **init_args) -> Comm:
    """The world communicator of a command that ``run`` started: traced, carrying this rank's
    BLAS-thread note, and kept in ``state`` so that a fault on one rank ends every rank.
    ``init_args`` go to :func:`minipar.comm.communicator.init` (``timeout``, ``show_comm``...)."""
    comm = init(trace=trace, **init_args)
    if threads.NOTE:
        comm.notes.append(threads.NOTE)
    state["comm"], state["timeout"] = comm, init_args.get("timeout")
    return comm


def main_of(fn):
    """A command's ``main(argv=None)`` from its ``fn(argv)``: user errors become one line from
    rank 0 and status 2, faults one line naming the rank (see ``run``)."""
    def main(argv=None) -> int:
        return run(lambda args, _state: fn(args), argv)
    return main
