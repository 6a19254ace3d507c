"""The world: the one module that imports mpi4py, and what must happen before MPI starts.

``open_world()`` returns MPI's constants and its world communicator under a launcher
(``mpiexec``), or the one-rank stand-in of :mod:`minipar.comm.selfcomm` without one, so
every command also runs as a plain process. ``mpi4py`` is imported inside ``open_world``:
importing it initialises MPI, which only a launched job should do.
"""

from __future__ import annotations

import os

from minipar.comm import selfcomm

HEAVY_YIELD_VAR = "MPIR_CVAR_ENABLE_HEAVY_YIELD"


def launched_ranks(env) -> tuple[int, int]:
    """(ranks in the job, ranks on this host) as the launcher tells them; (0, 0) if none."""
    size = env.get("PMI_SIZE") or env.get("OMPI_COMM_WORLD_SIZE") or env.get("PMIX_SIZE")
    local = env.get("MPI_LOCALNRANKS") or env.get("OMPI_COMM_WORLD_LOCAL_SIZE") or size
    return int(size or 0), int(local or 0)


def yield_when_oversubscribed(env=os.environ, cores: int | None = None) -> str | None:
    """Set ``MPIR_CVAR_ENABLE_HEAVY_YIELD=1`` in ``env`` when the launcher put more ranks on
    this host than it has cores, unless the user set it. Returns the note to print, or None.

    Why: MPICH's waiting ranks spin; oversubscribed, a rank in a barrier takes half a core
    from the rank doing the work (measured: compute time doubled). Heavy yield stops that at
    ~0.1-0.2 ms more small-message latency. It must be set before MPI_Init reads its CVARs.
    """
    _, local = launched_ranks(env)
    cores = cores or os.cpu_count() or 1
    if local <= cores or HEAVY_YIELD_VAR in env:
        return None
    env[HEAVY_YIELD_VAR] = "1"
    return (f"{local} ranks on {cores} cores: set {HEAVY_YIELD_VAR}=1 so waiting ranks yield "
            "the CPU (costs ~0.1-0.2 ms per small message)")


def open_world():
    """(module with MPI's constants, world communicator, notes). Chooses mpi4py under a
    launcher (or MINIPAR_COMM=mpi), else the one-rank stand-in (MINIPAR_COMM=self forces it)."""
    want = os.environ.get("MINIPAR_COMM", "").lower()
    size, _ = launched_ranks(os.environ)
    if want == "self" or (want != "mpi" and size == 0):
        return selfcomm, selfcomm.SelfComm(), []
    note = yield_when_oversubscribed()
    notes = [note] if note else []
    try:
        from mpi4py import MPI
    except ImportError as exc:
        if size > 1:
            raise RuntimeError(f"launched on {size} ranks but mpi4py cannot be imported "
                               f"({exc}): pip install mpi4py mpich") from exc
        notes.append("mpi4py not importable: running as one rank")
        return selfcomm, selfcomm.SelfComm(), notes
    return MPI, MPI.COMM_WORLD, notes


def cuda_aware(M) -> tuple[bool, str]:
    """(whether MPI takes GPU buffers, why we think so), from the library's own description:
    MPICH lists ``--with-cuda`` in its configure line when built for CUDA, Open MPI names
    CUDA in its version string. Never assumed: without a sign, buffers go through the host."""
    if getattr(M, "__name__", "").endswith("selfcomm"):
        return False, "one rank: nothing to send"
    text = M.Get_library_version()
    first = " ".join(text.split()[:3])
    if os.environ.get("MPIR_CVAR_ENABLE_GPU") == "0":
        return False, f"{first}: GPU support switched off (MPIR_CVAR_ENABLE_GPU=0)"
    if "--with-cuda" in text or ("Open MPI" in text and "CUDA" in text):
        return True, f"{first} was built with CUDA"
    return False, f"{first} shows no CUDA support: GPU buffers are staged through the host"


def mpi4py_version() -> str:
    import mpi4py
    return mpi4py.__version__
