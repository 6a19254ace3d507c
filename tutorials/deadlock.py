# file: tutorials/deadlock.py
"""Tutorial 4: a deadlock, caught. Both ranks wait to receive before anyone sends.

    mpiexec -n 2 python tutorials/deadlock.py
"""

import numpy as np

from minipar.comm import launch
from minipar.comm.communicator import init


def main(argv, state):
    comm = init(timeout=2.0)  # any wait longer than 2 s raises CommTimeout
    state["comm"] = comm      # so a fault ends every rank, not just this one
    other = 1 - comm.rank
    buf = np.zeros(1000)
    comm.recv(buf, other, tag=1)  # both ranks wait here: nobody ever sends
    comm.send(buf, other, tag=1)


raise SystemExit(launch.run(main))
