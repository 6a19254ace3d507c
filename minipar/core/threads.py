"""One BLAS thread budget per rank, set before NumPy loads.

Every rank's OpenBLAS starts one thread per core, so k ranks on a host with c cores run
k * c BLAS threads on c cores, and they spin against each other. Measured on the 2-vCPU
development host (pipeline, 2 stages, H = 256, 1F1B, 4 micro-batches): a step took 1.3-3.2 s
with two BLAS threads per rank and 0.13-0.16 s with one. So under a launcher that puts k > 1
ranks on this host, each rank gets floor(c / k) threads (at least 1), unless the user set
a thread count already. ``minipar/__init__.py`` calls this, so it happens before any
``import numpy`` of ours; ``NOTE`` keeps the line a run prints about it.
"""

from __future__ import annotations

import os
import sys

BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NOTE: str | None = None


def limit_blas_threads(env=os.environ, cores: int | None = None) -> str | None:
    """Set floor(cores / ranks on this host) BLAS threads per rank; returns the note."""
    local = int(env.get("MPI_LOCALNRANKS") or env.get("OMPI_COMM_WORLD_LOCAL_SIZE") or 1)
    if local < 2 or any(v in env for v in BLAS_VARS) or "numpy" in sys.modules:
        return None
    n = max(1, (cores or os.cpu_count() or 1) // local)
    for v in BLAS_VARS:
        env[v] = str(n)
    return f"{local} ranks on this host: {n} BLAS thread(s) per rank ({BLAS_VARS[0]}={n})"


def apply() -> None:
    global NOTE
    NOTE = limit_blas_threads() or NOTE


def budget(env=os.environ) -> int:
    """Threads this process may keep busy: the BLAS thread count when one is set (under a
    launcher ``limit_blas_threads`` sets floor(cores / ranks on this host)), else the cores
    it may run on. Work that splits itself into threads (ARPA formatting) takes this many."""
    for v in BLAS_VARS:
        try:
            return max(1, int(env[v]))
        except (KeyError, ValueError):
            continue
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
