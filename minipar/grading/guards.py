"""What a graded function may not reach: minipar's own collectives, MPI itself, or the
insides of the communicator it is given.

A solution that calls ``minipar.comm.collectives._ring_allgather``, or sends the ring's
messages for show and then takes the sum from ``MPI.COMM_WORLD.Allreduce``, would pass
every check that only looks at the messages. So the grading worker, before it loads the
student's module:

- wraps every function of ``minipar.comm.collectives`` that takes a ``comm``: called from
  inside the minipar package (the references use each other) it runs; called from anywhere
  else it raises ``Forbidden`` naming the function;
- puts a stand-in for ``mpi4py.MPI`` in its place, whose communicators and communicator
  classes raise ``Forbidden`` (minipar's own communicator keeps the real module);
- hands the function ``student_view(comm)``: the communicator's public calls only.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import types

import minipar

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(minipar.__file__)), "")
MPI_HANDLES = ("COMM_WORLD", "COMM_SELF", "Comm", "Intracomm", "Intercomm")


class Forbidden(Exception):
    """The graded function reached something the exercise asks it to write itself."""


def _guarded(fn, name: str):
    @functools.wraps(fn)
    def guard(*args, **kwargs):
        caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
        if not caller.startswith(PACKAGE):
            raise Forbidden(f"calls minipar's own {name}: the exercise is to write the "
                            f"messages yourself, with comm.send/recv/sendrecv")
        return fn(*args, **kwargs)
    return guard


def guard_module(module) -> None:
    """Wrap every function of ``module`` that communicates (its first parameter is ``comm``);
    arithmetic helpers such as ``chunk_counts`` stay free to use."""
    for name, fn in list(vars(module).items()):
        if (inspect.isfunction(fn) and fn.__module__ == module.__name__
                and next(iter(inspect.signature(fn).parameters), None) == "comm"):
            setattr(module, name, _guarded(fn, f"{module.__name__.rsplit('.', 1)[-1]}.{name}"))


class _StandInMPI(types.ModuleType):
    def __init__(self, real):
        super().__init__("mpi4py.MPI")
        self._real = real

    def __getattr__(self, name):
        if name in MPI_HANDLES:
            raise Forbidden(f"reaches MPI directly (mpi4py's MPI.{name}): use only the comm "
                            f"your function is given")
        return getattr(self._real, name)


def guard_mpi4py() -> None:
    """Put the stand-in where ``from mpi4py import MPI`` finds it (if MPI was loaded)."""
    real, package = sys.modules.get("mpi4py.MPI"), sys.modules.get("mpi4py")
    if real is None or isinstance(real, _StandInMPI):
        return
    stand_in = _StandInMPI(real)
    sys.modules["mpi4py.MPI"] = stand_in
    if package is not None:
        package.MPI = stand_in


def student_view(comm):
    """The communicator with its private attributes (the raw MPI communicator among them)
    out of reach: everything public is passed through."""

    class StudentComm:
        __slots__ = ()

        def __getattr__(self, name):
            if name.startswith("_"):
                raise Forbidden(f"reaches into the communicator (comm.{name}): use only its "
                                f"public calls (send, recv, sendrecv, isend, irecv, wait, "
                                f"rank, size)")
            return getattr(comm, name)

        def __repr__(self):
            return f"<comm rank {comm.rank} of {comm.size}>"

    return StudentComm()
