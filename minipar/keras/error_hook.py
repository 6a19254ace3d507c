"""A user mistake in a Keras-style script ends it as one line, on every rank, exit status 2.

Python prints a traceback for an uncaught exception. For a ``UserError`` (a wrong argument,
data that do not fit the model, ranks given different data) the hook installed here prints
``minipar: error: <message>`` instead and exits with status 2. Under mpiexec the ranks first
listen a moment for each other (``launch.end_with_fault``): when every rank raised it (data
checks run alike everywhere), rank 0 alone prints it; when only some did, they print it
naming their rank and the job is ended, so no rank waits forever. Any other exception keeps
Python's traceback, and under mpiexec then ends the whole job too.
"""

from __future__ import annotations

import os
import sys

from minipar.comm import launch
from minipar.core.errors import UserError
from minipar.keras.distribute import current_world

_PREVIOUS = {}


def _hook(kind, exc, tb) -> None:
    comm = current_world()
    multi = comm is not None and comm.size > 1
    if not isinstance(exc, UserError):
        _PREVIOUS["hook"](kind, exc, tb)
        if multi:
            sys.stderr.flush()
            comm.abort(launch.EXIT_FAULT)
        return
    if multi:
        code = launch.end_with_fault(exc, comm, comm.rank, debug=False, timeout=None)
    else:
        launch.say_error(str(exc))
        code = launch.EXIT_USER
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # MPI is left as it is: the job ends either way


def install_error_hook() -> None:
    """Put ``_hook`` in front of Python's own (once)."""
    if "hook" not in _PREVIOUS:
        _PREVIOUS["hook"] = sys.excepthook
        sys.excepthook = _hook
