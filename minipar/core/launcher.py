"""What the launcher (``mpiexec``) tells a process in its environment, before MPI starts.

Read before the communicator exists, for example to let only the first rank print an error
found while importing, when every rank finds the same one.
"""

from __future__ import annotations

import os

RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")  # MPICH, Open MPI, PMIx


def launcher_rank(env=os.environ) -> int:
    """This process's rank as the launcher tells it (0 when started alone)."""
    for var in RANK_VARS:
        if var in env:
            return int(env[var])
    return 0
