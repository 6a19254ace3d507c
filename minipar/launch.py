"""How a minipar program starts and ends on every rank, including when something goes wrong.

- A user mistake (``UserError``: bad flag, bad file, impossible size) is found before
  training by every rank, agreed on with one small collective (``agree``), and reported once,
  by rank 0, as ``minipar: error: ...`` on stderr; every rank exits with status 2.
- A fault on one rank (any other exception, a communication timeout) is reported by that
  rank as one line naming the rank, the error and where it happened, and the whole job is
  ended with MPI_Abort, so no other rank waits forever. ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

from minipar.errors import UserError

EXIT_USER, EXIT_FAULT = 2, 1


def launcher_rank() -> int:
    """This process's rank as the launcher tells it, before MPI starts (0 when alone)."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


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
        messages = comm.allgather_obj(None if err is None else (type(err).__name__, str(err)))
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if failed and err is None:
            rank, (_, text) = failed[0]
            err = UserError(text if rank == 0 else f"{text} (on rank {rank})")
    if err is not None:
        raise err
    return result


def where(exc: BaseException) -> str:
    """``file.py:123 in function`` of the innermost frame of the traceback."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return "?"
    f = tb[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def run(main, argv=None, debug_flag: str = "--debug") -> int:
    """Call ``main(argv, state)``, turning every failure into one line and an exit status.

    ``state`` is a dict main fills in as it goes (``comm`` once it has one), so a fault can
    end the whole job."""
    argv = sys.argv[1:] if argv is None else argv
    debug = debug_flag in argv
    state: dict = {}
    try:
        return main(argv, state) or 0
    except SystemExit:
        raise
    except UserError as exc:
        if launcher_rank() == 0:
            if debug:
                traceback.print_exc()
            say_error(str(exc))
        return EXIT_USER
    except KeyboardInterrupt:
        if launcher_rank() == 0:
            say_error("interrupted")
        return 130
    except BaseException as exc:  # a fault: end every rank, not just this one
        comm = state.get("comm")
        rank = comm.rank if comm is not None else launcher_rank()
        if debug:
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"minipar: rank {rank}: {type(exc).__name__}: {first} (at {where(exc)})",
              file=sys.stderr, flush=True)
        rest = str(exc).splitlines()[1:]
        if rest:
            print("\n".join(rest), file=sys.stderr, flush=True)
        if comm is not None and comm.size > 1:
            comm.abort(EXIT_FAULT)
        return EXIT_FAULT
